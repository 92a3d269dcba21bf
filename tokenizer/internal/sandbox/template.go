package sandbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/ardanlabs/jinja"
)

// MaxSourceBytes bounds a template's source.
const MaxSourceBytes = 1 << 20

// Template is a compiled template whose rendering is bounded by a Budget.
type Template struct {
	name     string
	compiled *jinja.Template
	sites    []site
	topText  int
}

var errLimit = errors.New("template exceeds a compile limit")

// Compile checks and compiles source. name says which template it is in errors
// (for example `tokenizer_config.json chat_template "default"`).
func Compile(name, source string) (*Template, error) {
	if len(source) > MaxSourceBytes {
		return nil, fmt.Errorf("%s: %d bytes of source (at most %d)", name, len(source), MaxSourceBytes)
	}
	segs, ok := scan(source)
	if !ok {
		return nil, libraryError(name, source)
	}
	depth := 0
	for _, seg := range segs {
		if seg.kind != segExpr && seg.kind != segStmt {
			continue
		}
		if n, bad := usesReserved(seg.text); bad {
			return nil, fmt.Errorf("%s: line %d uses the reserved name %q", name, seg.line, n)
		}
		if seg.kind == segStmt {
			switch k := stmtKeyword(seg.text); k {
			case "if", "for", "macro", "call", "filter", "generation", "block":
				depth++
			case "set":
				if !containsEquals(seg.text) {
					depth++
				}
			default:
				if len(k) > 3 && k[:3] == "end" {
					depth--
				}
			}
			if depth > maxNesting {
				return nil, fmt.Errorf("%s: line %d: blocks nested deeper than %d", name, seg.line, maxNesting)
			}
		}
	}
	rw := &rewriter{isFilter: func(n string) bool { _, ok := builtinFilter(n); return ok }}
	guarded, err := rw.rewrite(segs)
	if err != nil {
		if libErr := libraryError(name, source); libErr != nil {
			return nil, libErr
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := libraryError(name, source); err != nil {
		return nil, err
	}
	compiled, err := jinja.Compile(guarded)
	if err != nil {
		return nil, fmt.Errorf("%s: the guarded template does not compile (a sandbox bug): %w", name, err)
	}
	return &Template{name: name, compiled: compiled, sites: rw.sites, topText: rw.topText}, nil
}

func containsEquals(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return true
		}
	}
	return false
}

// libraryError is the library's own compile error for source, if any. It runs
// only on source whose nesting Compile has bounded.
func libraryError(name, source string) error {
	if _, err := jinja.Compile(source); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Render renders the template with vars within budget b (zero fields: the
// defaults). Cancelling ctx stops it at its next step.
func (t *Template) Render(ctx context.Context, vars map[string]jinja.Value, b Budget) (out string, err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	r := &run{t: t, b: b.withDefaults(), ctx: ctx, slots: make([][]jinja.Value, len(t.sites))}
	if err := r.emit(int64(t.topText), -1); err != nil {
		return "", err
	}
	all := make(map[string]jinja.Value, len(vars)+12)
	for k, v := range vars {
		all[k] = v
	}
	for k, v := range r.guards() {
		all[k] = v
	}
	defer func() {
		if p := recover(); p != nil { // a library bug must not take the process down
			out, err = "", fmt.Errorf("%s: rendering failed: %v", t.name, p)
		}
	}()
	out, err = t.compiled.RenderValues(all)
	if r.err != nil {
		return "", r.err
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", t.name, err)
	}
	return out, nil
}
