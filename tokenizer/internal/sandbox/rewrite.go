package sandbox

import (
	"fmt"
	"strings"
)

// siteKind says what a guard call site checks.
type siteKind int

const (
	siteCall   siteKind = iota // __hb_call(S, fn, args…): recursion depth, results
	siteMethod                 // __hb_call(S, __hb_l(S, obj).m, args…): the receiver too
	siteOp                     // __hb_l(S, a) op __hb_op(S, b): the size of what the operator builds
	siteFilter                 // __hb_filter(S, input, args…): a builtin filter
	siteValue                  // __hb_v(S, x): the cost of reading x
	siteIter                   // __hb_iter(S, x): the items a for loop materializes
	siteBody                   // __hb_body(S): one execution of a loop, macro or call body
	siteOutput                 // __hb_out(S, x): rendered output
)

// site is one guard call in the rewritten template.
type site struct {
	kind siteKind
	name string // operator, filter, method or callee
	deep bool   // siteValue: x is compared or printed, so its nesting matters
	text int    // siteBody: bytes of static text the body emits each time it runs
	line int
}

// Guard function names. Templates may not use names starting with "__hb" or
// "__filter_" (the library keeps its filters under the latter), so they cannot
// shadow the guards or reach a builtin filter around them.
const (
	guardCall   = "__hb_call"
	guardLeft   = "__hb_l"
	guardOp     = "__hb_op"
	guardFilter = "__hb_filter"
	guardValue  = "__hb_v"
	guardIter   = "__hb_iter"
	guardBody   = "__hb_body"
	guardOut    = "__hb_out"
	guardEmit   = "__hb_emit"
	reserved    = "__hb"
)

// cheapTests are tests that look at a value's kind only; other tests may scan
// or compare the whole value.
var cheapTests = map[string]bool{"defined": true, "undefined": true, "none": true, "boolean": true, "integer": true,
	"float": true, "number": true, "string": true, "mapping": true, "iterable": true, "sequence": true,
	"callable": true, "true": true, "false": true, "odd": true, "even": true, "divisibleby": true}

// rewriter turns a template into an equivalent one whose work runs through
// guard calls.
type rewriter struct {
	sites     []site
	isFilter  func(name string) bool // a builtin filter of the library
	line      int
	filterTmp int
	topText   int
}

func (r *rewriter) add(s site) int {
	s.line = r.line
	r.sites = append(r.sites, s)
	return len(r.sites) - 1
}

// block is an open {% … %} block while rewriting.
type block struct {
	keyword  string
	textSite int    // the body site that pays for this block's text (-1: the template's top level)
	parent   int    // the enclosing block's textSite, for a for loop's else branch
	filter   string // {% filter %}: the rewritten filter expression
}

// rewrite returns the guarded template source.
func (r *rewriter) rewrite(segs []segment) (string, error) {
	var out strings.Builder
	var stack []block
	textSite := func() int {
		if len(stack) == 0 {
			return -1
		}
		return stack[len(stack)-1].textSite
	}
	openBody := func(keyword string) string {
		s := r.add(site{kind: siteBody})
		stack = append(stack, block{keyword: keyword, textSite: s, parent: textSite()})
		return fmt.Sprintf("{%%+ set %s_ = %s(%d) +%%}", reserved, guardBody, s)
	}
	inherit := func(keyword string) {
		stack = append(stack, block{keyword: keyword, textSite: textSite(), parent: textSite()})
	}
	closeBlock := func(keyword string) (block, error) {
		if len(stack) == 0 || stack[len(stack)-1].keyword != keyword {
			return block{}, fmt.Errorf("line %d: unexpected end%s", r.line, keyword)
		}
		b := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		return b, nil
	}
	raw := false // inside {% raw %}: the library prints tags back as written
	for _, seg := range segs {
		r.line = seg.line
		if raw {
			if seg.kind == segStmt && stmtKeyword(seg.text) == "endraw" {
				raw = false
			} else {
				seg = segment{kind: segText, text: seg.String()}
			}
		}
		switch seg.kind {
		case segText:
			if s := textSite(); s >= 0 {
				r.sites[s].text += len(seg.text)
			} else {
				r.topText += len(seg.text)
			}
			out.WriteString(seg.text)
			continue
		case segComment:
			out.WriteString(seg.String())
			continue
		case segExpr:
			e, err := parseExpr(seg.text)
			if err != nil {
				return "", fmt.Errorf("line %d: %w", seg.line, err)
			}
			body, err := r.expr(e)
			if err != nil {
				return "", fmt.Errorf("line %d: %w", seg.line, err)
			}
			fmt.Fprintf(&out, "%s %s(%d, %s) %s", seg.open, guardOut, r.add(site{kind: siteOutput}), body, seg.close)
			continue
		}
		text := strings.TrimSpace(seg.text)
		keyword := stmtKeyword(seg.text)
		rest := strings.TrimSpace(strings.TrimPrefix(text, keyword))
		tag := func(inner string) string { return seg.open + " " + inner + " " + seg.close }
		var err error
		switch keyword {
		case "if", "elif":
			var cond string
			if cond, err = r.source(rest); err == nil {
				out.WriteString(tag(keyword + " " + cond))
			}
			if keyword == "if" {
				inherit("if")
			}
		case "else":
			if n := len(stack); n > 0 && stack[n-1].keyword == "for" {
				stack[n-1].textSite = stack[n-1].parent // runs once per loop, not per item
			}
			out.WriteString(seg.String())
		case "for":
			var head string
			if head, err = r.forHead(rest); err == nil {
				out.WriteString(tag("for " + head))
				out.WriteString(openBody("for"))
			}
		case "macro":
			var head string
			if head, err = r.macroHead(rest); err == nil {
				out.WriteString(tag("macro " + head))
				out.WriteString(openBody("macro"))
			}
		case "call":
			var head string
			if head, err = r.callHead(rest); err == nil {
				out.WriteString(tag("call" + head))
				out.WriteString(openBody("call"))
			}
		case "set":
			if !strings.Contains(rest, "=") {
				inherit("set")
				out.WriteString(seg.String())
				break
			}
			target, value, _ := strings.Cut(rest, "=")
			var v string
			if v, err = r.source("(" + value + ")"); err == nil {
				out.WriteString(tag("set " + strings.TrimSpace(target) + " = " + v))
			}
		case "filter":
			// {% filter f %}body{% endfilter %} becomes a block set of the body and a
			// guarded filter call on it, with the original tags' whitespace markers.
			r.filterTmp++
			name := fmt.Sprintf("%s_fb%d", reserved, r.filterTmp)
			var f string
			if f, err = r.source(name + " | " + rest); err == nil {
				inherit("filter")
				stack[len(stack)-1].filter = f
				out.WriteString(tag("set " + name))
			}
		case "endfilter":
			var b block
			if b, err = closeBlock("filter"); err == nil {
				fmt.Fprintf(&out, "%s endset +%%}{%%+ call %s(%s) +%%}{%%+ endcall %s", seg.open, guardEmit, b.filter, seg.close)
			}
		case "endif", "endfor", "endmacro", "endcall", "endset", "endgeneration", "endblock":
			_, err = closeBlock(strings.TrimPrefix(keyword, "end"))
			out.WriteString(seg.String())
		case "generation", "block":
			inherit(keyword)
			out.WriteString(seg.String())
		case "raw":
			raw = true
			out.WriteString(seg.String())
		default: // endraw, break, continue; anything else the library rejects itself
			out.WriteString(seg.String())
		}
		if err != nil {
			return "", fmt.Errorf("line %d: %w", seg.line, err)
		}
	}
	if len(stack) > 0 {
		return "", fmt.Errorf("unclosed %s block", stack[len(stack)-1].keyword)
	}
	return out.String(), nil
}

// source parses and rewrites one expression.
func (r *rewriter) source(s string) (string, error) {
	e, err := parseExpr(s)
	if err != nil {
		return "", err
	}
	return r.expr(e)
}

// forHead rewrites "vars in iterable [if filter] [recursive]", split as the library splits it.
func (r *rewriter) forHead(s string) (string, error) {
	in := findKeyword(s, "in")
	if in < 0 {
		return "", fmt.Errorf("for loop missing 'in'")
	}
	vars, iter := strings.TrimSpace(s[:in]), strings.TrimSpace(s[in+2:])
	recursive := false
	if i := findKeyword(iter, "recursive"); i >= 0 {
		recursive, iter = true, strings.TrimSpace(iter[:i])
	}
	cond := ""
	if i := findKeyword(iter, "if"); i >= 0 {
		c, err := r.source(strings.TrimSpace(iter[i+2:]))
		if err != nil {
			return "", err
		}
		cond, iter = " if ("+c+")", strings.TrimSpace(iter[:i])
	}
	it, err := r.source(iter)
	if err != nil {
		return "", err
	}
	head := fmt.Sprintf("%s in %s(%d, %s)%s", vars, guardIter, r.add(site{kind: siteIter}), it, cond)
	if recursive {
		head += " recursive"
	}
	return head, nil
}

// macroHead rewrites "name(param, param=default, …)": defaults are expressions.
func (r *rewriter) macroHead(s string) (string, error) {
	name, params, ok := strings.Cut(s, "(")
	if !ok {
		return "", fmt.Errorf("macro missing parameter list")
	}
	p := &parser{toks: lex(strings.TrimSuffix(params, ")"))}
	var out []string
	for p.peek().kind != tokEOF {
		t := p.next()
		if t.kind != tokName {
			return "", fmt.Errorf("macro parameter: unexpected %q", t.raw)
		}
		param := t.raw
		if p.isOp("=") {
			p.next()
			def, err := p.expression()
			if err == nil {
				err = checkDepth(def)
			}
			if err != nil {
				return "", err
			}
			d, err := r.expr(def)
			if err != nil {
				return "", err
			}
			param += "=" + d
		}
		out = append(out, param)
		if p.peek().kind != tokEOF {
			if err := p.expect(tokComma, ","); err != nil {
				return "", err
			}
		}
	}
	return strings.TrimSpace(name) + "(" + strings.Join(out, ", ") + ")", nil
}

// callHead rewrites "[(caller args)] expression"; the expression always becomes a
// call of the guard, which the library then gives the caller keyword.
func (r *rewriter) callHead(s string) (string, error) {
	args := ""
	if strings.HasPrefix(s, "(") {
		end := strings.Index(s, ")")
		if end < 0 {
			return "", fmt.Errorf("unclosed call args")
		}
		args, s = s[:end+1], strings.TrimSpace(s[end+1:])
	}
	e, err := parseExpr(s)
	if err != nil {
		return "", err
	}
	var call string
	if c, ok := e.(callNode); ok {
		call, err = r.call(c)
	} else {
		var fn string
		if fn, err = r.expr(e); err == nil {
			call = fmt.Sprintf("%s(%d, %s)", guardCall, r.add(site{kind: siteCall}), fn)
		}
	}
	return args + " " + call, err
}

// findKeyword finds kw as a whole word outside quotes and brackets (the library's rule).
func findKeyword(s, kw string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if quote != 0 {
			if ch == '\\' && i+1 < len(s) {
				i++
			} else if ch == quote {
				quote = 0
			}
			continue
		}
		switch ch {
		case '\'', '"':
			quote = ch
			continue
		case '(', '[', '{':
			depth++
			continue
		case ')', ']', '}':
			depth--
			continue
		}
		if depth == 0 && strings.HasPrefix(s[i:], kw) &&
			(i == 0 || !isIdentByte(s[i-1])) && (i+len(kw) >= len(s) || !isIdentByte(s[i+len(kw)])) {
			return i
		}
	}
	return -1
}

func paren(s string) string { return "(" + s + ")" }

// sequence prints a list or tuple literal of printed items.
func sequence(items []string, tuple bool) string {
	switch {
	case !tuple:
		return "[" + strings.Join(items, ", ") + "]"
	case len(items) == 1:
		return "(" + items[0] + ",)"
	}
	return "(" + strings.Join(items, ", ") + ")"
}

// expr prints e with guards; every composite sub-expression is parenthesized so
// the library parses the same tree back.
func (r *rewriter) expr(e node) (string, error) {
	switch n := e.(type) {
	case litNode:
		if strings.HasPrefix(n.raw, "-") {
			return paren(n.raw), nil
		}
		return n.raw, nil
	case nameNode:
		return n.name, nil
	case attrNode:
		obj, err := r.expr(n.obj)
		return paren(obj) + "." + n.attr, err
	case itemNode:
		obj, err := r.guarded(n.obj, false)
		if err != nil {
			return "", err
		}
		key, err := r.guarded(n.key, true)
		return paren(obj) + "[" + key + "]", err
	case sliceNode:
		if constant(n) && !amplifies(n) {
			// The library folds an all-constant slice with bad indices to undefined;
			// left as written, it stays constant (and is bounded by its source).
			return r.verbatim(n), nil
		}
		obj, err := r.guarded(n.obj, false)
		if err != nil {
			return "", err
		}
		parts := make([]string, 3)
		for i, b := range []node{n.start, n.stop, n.step} {
			if b != nil {
				if parts[i], err = r.expr(b); err != nil {
					return "", err
				}
				parts[i] = paren(parts[i])
			}
		}
		return paren(obj) + "[" + strings.Join(parts, ":") + "]", nil
	case callNode:
		return r.call(n)
	case filterNode:
		args, err := r.args(append([]node{n.input}, n.args...), n.kwargs)
		if err != nil {
			return "", err
		}
		if r.isFilter(n.name) {
			return fmt.Sprintf("%s(%d, %s)", guardFilter, r.add(site{kind: siteFilter, name: n.name}), args), nil
		}
		// Not a builtin filter: the library calls the variable of that name.
		return fmt.Sprintf("%s(%d, %s, %s)", guardCall, r.add(site{kind: siteCall, name: n.name}), n.name, args), nil
	case testNode:
		subject, err := r.expr(n.subject)
		if err != nil {
			return "", err
		}
		args := make([]string, len(n.args))
		for i, a := range n.args {
			if args[i], err = r.expr(a); err != nil {
				return "", err
			}
		}
		if !cheapTests[n.name] {
			subject = r.wrapValue(subject, true)
			for i := range args {
				args[i] = r.wrapValue(args[i], true)
			}
		}
		not := ""
		if n.negated {
			not = "not "
		}
		s := paren(subject) + " is " + not + n.name
		if len(args) > 0 {
			s += "(" + strings.Join(args, ", ") + ")"
		}
		return s, nil
	case unaryNode:
		operand, err := r.expr(n.operand)
		if n.op == "not" {
			return "not " + paren(operand), err
		}
		return n.op + paren(operand), err
	case binNode:
		left, err := r.expr(n.left)
		if err != nil {
			return "", err
		}
		right, err := r.expr(n.right)
		if err != nil {
			return "", err
		}
		switch n.op {
		case "+", "~", "*", "%":
			s := r.add(site{kind: siteOp, name: n.op})
			return fmt.Sprintf("(%s(%d, %s)) %s (%s(%d, %s))", guardLeft, s, left, n.op, guardOp, s, right), nil
		case "==", "!=", "<", ">", "<=", ">=", "in", "not in":
			return paren(r.wrapValue(left, true)) + " " + n.op + " " + paren(r.wrapValue(right, true)), nil
		}
		return paren(left) + " " + n.op + " " + paren(right), nil
	case compareNode:
		var sb strings.Builder
		for i, operand := range n.operands {
			o, err := r.expr(operand)
			if err != nil {
				return "", err
			}
			if i > 0 {
				sb.WriteString(" " + n.ops[i-1] + " ")
			}
			sb.WriteString(paren(r.wrapValue(o, true)))
		}
		return sb.String(), nil
	case condNode:
		then, err := r.expr(n.then)
		if err != nil {
			return "", err
		}
		cond, err := r.expr(n.cond)
		if err != nil {
			return "", err
		}
		s := paren(then) + " if " + paren(cond)
		if n.otherwise != nil {
			otherwise, err := r.expr(n.otherwise)
			if err != nil {
				return "", err
			}
			s += " else " + paren(otherwise)
		}
		return s, nil
	case listNode:
		items := make([]string, len(n.items))
		for i, it := range n.items {
			s, err := r.expr(it)
			if err != nil {
				return "", err
			}
			items[i] = paren(s)
		}
		return sequence(items, n.tuple), nil
	case dictNode:
		pairs := make([]string, len(n.keys))
		for i := range n.keys {
			k, err := r.guarded(n.keys[i], true) // keys are printed
			if err != nil {
				return "", err
			}
			v, err := r.expr(n.values[i])
			if err != nil {
				return "", err
			}
			pairs[i] = paren(k) + ": " + paren(v)
		}
		return "{" + strings.Join(pairs, ", ") + "}", nil
	}
	return "", fmt.Errorf("unknown expression %T", e)
}

// guarded prints e, wrapped in a value guard unless it is a literal.
func (r *rewriter) guarded(e node, deep bool) (string, error) {
	s, err := r.expr(e)
	if _, lit := e.(litNode); lit || err != nil {
		return s, err
	}
	return r.wrapValue(s, deep), nil
}

func (r *rewriter) wrapValue(s string, deep bool) string {
	return fmt.Sprintf("%s(%d, %s)", guardValue, r.add(site{kind: siteValue, deep: deep}), s)
}

func (r *rewriter) call(c callNode) (string, error) {
	if name, ok := c.fn.(nameNode); ok && name.name == "dict" {
		// dict(a=…, b=…) keeps its keyword order only when the library calls it
		// itself; it builds no more than its arguments.
		args, err := r.args(c.args, c.kwargs)
		return "dict(" + args + ")", err
	}
	args, err := r.args(c.args, c.kwargs)
	if err != nil {
		return "", err
	}
	if args != "" {
		args = ", " + args
	}
	if attr, ok := c.fn.(attrNode); ok {
		obj, err := r.expr(attr.obj)
		if err != nil {
			return "", err
		}
		s := r.add(site{kind: siteMethod, name: attr.attr})
		return fmt.Sprintf("%s(%d, (%s(%d, %s)).%s%s)", guardCall, s, guardLeft, s, obj, attr.attr, args), nil
	}
	fn, err := r.expr(c.fn)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s(%d, %s%s)", guardCall, r.add(site{kind: siteCall}), paren(fn), args), nil
}

func (r *rewriter) args(args []node, kwargs []kwarg) (string, error) {
	parts := make([]string, 0, len(args)+len(kwargs))
	for _, a := range args {
		s, err := r.expr(a)
		if err != nil {
			return "", err
		}
		parts = append(parts, paren(s))
	}
	for _, kw := range kwargs {
		s, err := r.expr(kw.value)
		if err != nil {
			return "", err
		}
		if kw.name == "" {
			parts = append(parts, "**"+paren(s))
		} else {
			parts = append(parts, kw.name+"="+paren(s))
		}
	}
	return strings.Join(parts, ", "), nil
}

// constant mirrors the library's constantExpr over a slice's parts.
func constant(e node) bool {
	switch n := e.(type) {
	case nil, litNode:
		return true
	case unaryNode:
		return constant(n.operand)
	case binNode:
		return constant(n.left) && constant(n.right)
	case listNode:
		for _, it := range n.items {
			if !constant(it) {
				return false
			}
		}
		return true
	case sliceNode:
		return constant(n.obj) && constant(n.start) && constant(n.stop) && constant(n.step)
	}
	return false
}

// amplifies reports whether a constant expression can build more than its source.
func amplifies(e node) bool {
	switch n := e.(type) {
	case unaryNode:
		return amplifies(n.operand)
	case binNode:
		return n.op == "*" || n.op == "+" || n.op == "~" || n.op == "%" || amplifies(n.left) || amplifies(n.right)
	case listNode:
		for _, it := range n.items {
			if amplifies(it) {
				return true
			}
		}
	case sliceNode:
		for _, p := range []node{n.obj, n.start, n.stop, n.step} {
			if p != nil && amplifies(p) {
				return true
			}
		}
	}
	return false
}

// verbatim prints a constant expression without guards.
func (r *rewriter) verbatim(e node) string {
	switch n := e.(type) {
	case litNode:
		if strings.HasPrefix(n.raw, "-") {
			return paren(n.raw)
		}
		return n.raw
	case unaryNode:
		if n.op == "not" {
			return "not " + paren(r.verbatim(n.operand))
		}
		return n.op + paren(r.verbatim(n.operand))
	case binNode:
		return paren(r.verbatim(n.left)) + " " + n.op + " " + paren(r.verbatim(n.right))
	case listNode:
		items := make([]string, len(n.items))
		for i, it := range n.items {
			items[i] = paren(r.verbatim(it))
		}
		return sequence(items, n.tuple)
	case sliceNode:
		parts := make([]string, 3)
		for i, b := range []node{n.start, n.stop, n.step} {
			if b != nil {
				parts[i] = paren(r.verbatim(b))
			}
		}
		return paren(r.verbatim(n.obj)) + "[" + strings.Join(parts, ":") + "]"
	}
	return "None"
}

// usesReserved reports the first reserved name a tag's text uses.
func usesReserved(text string) (string, bool) {
	for _, t := range lex(text) {
		if t.kind == tokName && (strings.HasPrefix(t.raw, reserved) || strings.HasPrefix(t.raw, "__filter_")) {
			return t.raw, true
		}
	}
	return "", false
}

// astDepth is how deeply e nests; the rewritten source parenthesizes every
// level, so this bounds the library's parser recursion too.
func astDepth(e node) int {
	d := 0
	visit := func(children ...node) {
		for _, c := range children {
			if c != nil {
				d = max(d, astDepth(c))
			}
		}
	}
	switch n := e.(type) {
	case attrNode:
		visit(n.obj)
	case itemNode:
		visit(n.obj, n.key)
	case sliceNode:
		visit(n.obj, n.start, n.stop, n.step)
	case callNode:
		visit(n.fn)
		visit(n.args...)
		for _, kw := range n.kwargs {
			visit(kw.value)
		}
	case filterNode:
		visit(n.input)
		visit(n.args...)
		for _, kw := range n.kwargs {
			visit(kw.value)
		}
	case testNode:
		visit(n.subject)
		visit(n.args...)
	case unaryNode:
		visit(n.operand)
	case binNode:
		visit(n.left, n.right)
	case compareNode:
		visit(n.operands...)
	case condNode:
		visit(n.then, n.cond, n.otherwise)
	case listNode:
		visit(n.items...)
	case dictNode:
		visit(n.keys...)
		visit(n.values...)
	}
	return d + 1
}
