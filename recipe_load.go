package handbook

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"
)

// LoadRecipe reads the recipe YAML at path for task, applies overrides (each
// "--key=value", as ParseArgs returns them), fills in defaults and validates.
//
// Every error names the file, the line or override, and the key. Unknown keys
// are errors with a did-you-mean suggestion; keys of IgnoredKeys are accepted
// and reported in Recipe.Warnings. Override values are typed by their key:
// integers, floats, booleans (true/false/yes/no/1/0), comma-separated lists,
// "None" or "null" for unset, and YAML or JSON for mappings. "--config_file"
// names an accelerate YAML, recorded in Recipe.Accelerate, and
// "--num_processes" overrides its process count as accelerate launch's flag
// does. A key may be overridden once.
func LoadRecipe(path string, task Task, overrides []string) (*Recipe, error) {
	switch task {
	case TaskSFT, TaskDPO, TaskORPO:
	default:
		return nil, fmt.Errorf("recipe %s: unknown task %q (want sft, dpo or orpo)", path, task)
	}
	raw, err := readConfigFile(path)
	if err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	l := &loader{r: defaultRecipe(task), path: path, set: map[string]origin{}, warned: map[string]bool{}}
	l.r.Path = path
	if err := l.file(&doc); err != nil {
		return nil, err
	}
	if err := l.overrides(overrides); err != nil {
		return nil, err
	}
	if err := l.finish(); err != nil {
		return nil, err
	}
	return l.r, nil
}

// ParseArgs splits a command line of the handbook's scripts, everything after
// the task, into the recipe path and the overrides. The recipe is the one
// positional argument (or "--config PATH", TRL's spelling); every other
// argument is an override, "--key=value" or "--key value", returned as
// "--key=value".
func ParseArgs(args []string) (recipePath string, overrides []string, err error) {
	setPath := func(p string) error {
		if recipePath != "" {
			return fmt.Errorf("two recipes given: %s and %s", recipePath, p)
		}
		recipePath = p
		return nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			if strings.HasPrefix(a, "-") {
				return "", nil, fmt.Errorf("argument %q: overrides are spelled --key=value", a)
			}
			if err := setPath(a); err != nil {
				return "", nil, err
			}
			continue
		}
		name, val, hasValue := strings.Cut(a[2:], "=")
		if name == "" {
			return "", nil, fmt.Errorf("argument %q: no key", a)
		}
		if !hasValue {
			if i+1 == len(args) || strings.HasPrefix(args[i+1], "--") {
				return "", nil, fmt.Errorf("argument %q: no value (want --%s=VALUE)", a, name)
			}
			i++
			val = args[i]
		}
		if name == "config" {
			if err := setPath(val); err != nil {
				return "", nil, err
			}
			continue
		}
		overrides = append(overrides, "--"+name+"="+val)
	}
	if recipePath == "" {
		return "", nil, errors.New("no recipe: give the recipe YAML's path")
	}
	return recipePath, overrides, nil
}

// origin is where a value was set: a line of the recipe file, or an override.
type origin struct {
	file     string
	override string // the override as given; "" for the file
	line     int
	key      string // the key as spelled there, alias or not
}

func (o origin) String() string {
	if o.override != "" {
		return o.file + ": override " + o.override
	}
	if o.line == 0 {
		return o.file
	}
	return fmt.Sprintf("%s:%d", o.file, o.line)
}

// at is o for a line inside the value: the line for the file, o for overrides.
func (o origin) at(line int) origin {
	if o.override == "" {
		o.line = line
	}
	return o
}

// loader fills one Recipe.
type loader struct {
	r      *Recipe
	path   string
	set    map[string]origin // key (after aliases) → where it was last set
	warned map[string]bool   // ignored keys already warned about
}

// where is the origin of key's value, the file itself for defaults.
func (l *loader) where(key string) origin {
	if o, ok := l.set[key]; ok {
		return o
	}
	return origin{file: l.path}
}

func canonical(name string) string {
	if c, ok := aliases[name]; ok {
		return c
	}
	return name
}

// file applies the recipe document's keys.
func (l *loader) file(doc *yaml.Node) error {
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return fmt.Errorf("%s: empty file", l.path)
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: a recipe is a mapping of keys to values", l.path, m.Line)
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		o := origin{file: l.path, line: k.Line}
		if prev, dup := seen[canonical(k.Value)]; dup {
			if prev.Value == k.Value {
				return fmt.Errorf("%s: %s is set twice (also at line %d)", o, k.Value, prev.Line)
			}
			return fmt.Errorf("%s: %s and %s (line %d) set the same key; keep one", o, k.Value, prev.Value, prev.Line)
		}
		seen[canonical(k.Value)] = k
		if err := l.setNode(k.Value, v, o); err != nil {
			return err
		}
	}
	return nil
}

// overrides applies "--key=value" arguments.
func (l *loader) overrides(args []string) error {
	seen := map[string]string{}
	var numProcesses *int
	for _, a := range args {
		o := origin{file: l.path, override: a}
		name, val, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok || name == "" {
			return fmt.Errorf("%s: want --key=value", o)
		}
		if prev, dup := seen[canonical(name)]; dup {
			return fmt.Errorf("%s: %s is already overridden by %s", o, name, prev)
		}
		seen[canonical(name)] = a
		if name == "config_file" {
			if err := l.accelerate(val, o); err != nil {
				return err
			}
			continue
		}
		if name == "num_processes" {
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return fmt.Errorf("%s: num_processes: want a positive whole number, got %q", o, val)
			}
			numProcesses = &n
			continue
		}
		if err := l.setString(name, val, o); err != nil {
			return err
		}
	}
	if numProcesses != nil {
		if l.r.Accelerate == nil {
			if *numProcesses > 1 {
				return fmt.Errorf("%s: --num_processes=%d needs --config_file (the accelerate config that says how to spread the processes)", l.path, *numProcesses)
			}
			return nil
		}
		l.r.Accelerate.NumProcesses = numProcesses
	}
	return nil
}

// accelerate records the accelerate config at path.
func (l *loader) accelerate(path string, o origin) error {
	raw, err := readConfigFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	var settings map[string]any
	if err := yaml.Unmarshal(raw, &settings); err != nil {
		return fmt.Errorf("%s: accelerate config %s: %w", o, path, err)
	}
	if settings == nil {
		return fmt.Errorf("%s: accelerate config %s is empty", o, path)
	}
	l.r.Accelerate = &AccelerateConfig{Path: path, Settings: settings}
	return nil
}

// lookup finds the typed key for name, or explains why there is none.
func (l *loader) lookup(name string, o origin) (key, error) {
	k, ok := keys[canonical(name)]
	if !ok {
		return key{}, fmt.Errorf("%s: unknown key %q%s", o, name, suggest(name, knownNames(l.r.Task)))
	}
	if !k.accepts(l.r.Task) {
		var ts []string
		for _, t := range k.tasks {
			ts = append(ts, string(t))
		}
		return key{}, fmt.Errorf("%s: %s is only for %s; this recipe is loaded for %s", o, name, strings.Join(ts, " and "), l.r.Task)
	}
	return k, nil
}

// setNode sets key name from a YAML value.
func (l *loader) setNode(name string, node *yaml.Node, o origin) error {
	if reason, ok := ignoredKeys[name]; ok {
		var v any
		if err := node.Decode(&v); err != nil {
			return fmt.Errorf("%s: %s: %w", o, name, err)
		}
		l.ignore(name, v, reason, o)
		return nil
	}
	k, err := l.lookup(name, o)
	if err != nil {
		return err
	}
	if err := checkNode(node, k.typ, name, o); err != nil {
		return err
	}
	var v any
	if err := node.Decode(&v); err != nil {
		return fmt.Errorf("%s: %s: %w", o, name, err)
	}
	if err := l.assign(k, v); err != nil {
		return fmt.Errorf("%s: %s: %w", o, name, err)
	}
	if k.name == "dataset_mixer" && l.r.Data.Legacy.Mixer != nil {
		l.r.Data.Legacy.Order = mappingKeys(node)
	}
	o.key = name
	l.set[k.name] = o
	return nil
}

// setString sets key name from an override's value.
func (l *loader) setString(name, raw string, o origin) error {
	if reason, ok := ignoredKeys[name]; ok {
		var v any = raw
		if err := yaml.Unmarshal([]byte(raw), &v); err != nil {
			v = raw
		}
		l.ignore(name, v, reason, o)
		return nil
	}
	k, err := l.lookup(name, o)
	if err != nil {
		return err
	}
	if base := deref(k.typ); base.Kind() == reflect.Map || base.Kind() == reflect.Struct {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(raw), &doc); err != nil {
			return fmt.Errorf("%s: want %s in YAML or JSON: %w", o, describe(k.typ), err)
		}
		if len(doc.Content) == 0 {
			doc.Content = []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!null"}}
		}
		return l.setNode(name, doc.Content[0], o)
	}
	v, err := parseFlag(raw, k.typ)
	if err != nil {
		return fmt.Errorf("%s: want %s, got %q", o, describe(k.typ), raw)
	}
	if err := l.assign(k, v); err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	o.key = name
	l.set[k.name] = o
	return nil
}

// ignore records an ignored key and warns once when its value asks for
// something.
func (l *loader) ignore(name string, v any, reason string, o origin) {
	l.r.Ignored[name] = v
	if l.warned[name] || !meaningful(v) {
		return
	}
	l.warned[name] = true
	l.r.Warnings = append(l.r.Warnings, fmt.Sprintf("%s: %s ignored: %s", o, name, reason))
}

// meaningful reports whether v is other than null, false, zero or empty.
func meaningful(v any) bool {
	if v == nil {
		return false
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map:
		return rv.Len() > 0
	}
	return !rv.IsZero()
}

// assign decodes v into k's field; null sets the field's zero value (unset).
func (l *loader) assign(k key, v any) error {
	f := reflect.ValueOf(l.r).Elem()
	for _, i := range k.index {
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				f.Set(reflect.New(f.Type().Elem()))
			}
			f = f.Elem()
		}
		f = f.Field(i)
	}
	if v == nil {
		f.SetZero()
		return nil
	}
	fresh := reflect.New(f.Type())
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:      fresh.Interface(),
		ErrorUnused: true,
		DecodeHook:  mapstructure.ComposeDecodeHookFunc(scalarToSliceHook, wholeNumberHook),
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(v); err != nil {
		if deref(f.Type()).Kind() == reflect.Struct {
			if inner := errors.Unwrap(err); inner != nil {
				err = inner
			}
			return errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		return fmt.Errorf("want %s, got %s", describe(f.Type()), describeValue(v))
	}
	f.Set(fresh.Elem())
	return nil
}

// scalarToSliceHook lets a single value stand for a one-element list
// (lora_target_modules: all-linear, report_to: tensorboard, loss_type: ipo).
func scalarToSliceHook(from, to reflect.Type, v any) (any, error) {
	if to.Kind() == reflect.Slice && from.Kind() != reflect.Slice && from.Kind() != reflect.Map {
		return []any{v}, nil
	}
	return v, nil
}

// wholeNumberHook refuses fractional numbers for integer fields, which
// mapstructure would truncate.
func wholeNumberHook(from, to reflect.Type, v any) (any, error) {
	if f, ok := v.(float64); ok && to.Kind() >= reflect.Int && to.Kind() <= reflect.Int64 && f != float64(int64(f)) {
		return nil, fmt.Errorf("want an integer, got %v", f)
	}
	return v, nil
}

// parseFlag types an override's value for a field of type t.
func parseFlag(raw string, t reflect.Type) (any, error) {
	if raw == "None" || raw == "null" {
		return nil, nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return parseFlag(raw, t.Elem())
	case reflect.Slice:
		if strings.TrimSpace(raw) == "" {
			return []any{}, nil
		}
		var out []any
		for p := range strings.SplitSeq(raw, ",") {
			v, err := parseFlag(strings.TrimSpace(p), t.Elem())
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case reflect.String:
		return raw, nil
	case reflect.Bool:
		switch strings.ToLower(raw) {
		case "true", "yes", "y", "t", "1":
			return true, nil
		case "false", "no", "n", "f", "0":
			return false, nil
		}
		return nil, fmt.Errorf("not a boolean: %q", raw)
	case reflect.Int:
		return strconv.Atoi(raw)
	case reflect.Float64:
		return strconv.ParseFloat(raw, 64)
	}
	return nil, fmt.Errorf("cannot parse %s from the command line", t)
}

// checkNode rejects keys of YAML mappings that the struct they decode into
// lacks, with a suggestion and the key's line.
func checkNode(n *yaml.Node, t reflect.Type, path string, o origin) error {
	t = deref(t)
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		structFields(t, fields)
		names := make([]string, 0, len(fields))
		for name := range fields {
			names = append(names, name)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				return fmt.Errorf("%s: %s: unknown key %q%s", o.at(k.Line), path, k.Value, suggest(k.Value, names))
			}
			if err := checkNode(v, ft, path+"."+k.Value, o); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, e := range n.Content {
			if err := checkNode(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), o); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkNode(n.Content[i+1], t.Elem(), path+"."+n.Content[i].Value, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// structFields collects the mapstructure names of t's fields.
func structFields(t reflect.Type, out map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		switch {
		case opts == "squash":
			structFields(deref(f.Type), out)
		case name != "" && name != "-":
			out[name] = f.Type
		}
	}
}

// mappingKeys are the keys of a YAML mapping in document order.
func mappingKeys(n *yaml.Node) []string {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	var out []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, n.Content[i].Value)
	}
	return out
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// describe names what a value of type t looks like in a recipe.
func describe(t reflect.Type) string {
	t = deref(t)
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(describe(t.Elem()), "an "), "a ") + "s"
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return "a mapping"
		}
		return "a mapping to " + strings.TrimPrefix(strings.TrimPrefix(describe(t.Elem()), "an "), "a ") + "s"
	}
	return "a mapping"
}

// describeValue shows a decoded YAML value in an error.
func describeValue(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case map[string]any, map[any]any:
		return fmt.Sprintf("the mapping %v", v)
	case []any:
		return fmt.Sprintf("the list %v", v)
	}
	return fmt.Sprint(v)
}

// oneOf checks that v is one of allowed, suggesting the closest otherwise.
func oneOf(v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	if s := suggest(v, allowed); s != "" {
		return fmt.Errorf("%q is not valid%s", v, s)
	}
	return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
}

// maxConfigBytes bounds a recipe or accelerate config file (the seed's are a few KB), so a wrong
// path such as /dev/zero is an error, not an endless read.
const maxConfigBytes = 1 << 20

func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxConfigBytes {
		return nil, fmt.Errorf("%s: larger than %d KiB, not a recipe", path, maxConfigBytes>>10)
	}
	return raw, nil
}
