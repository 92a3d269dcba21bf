package sandbox

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/ardanlabs/jinja"
)

const (
	// valueBytes is what one list item or dict entry costs (a jinja.Value and its slot).
	valueBytes = 32
	// scanBytesPerStep and nodesPerStep convert reading text and walking values into steps.
	scanBytesPerStep = 4096
	nodesPerStep     = 8
)

// run is the state of one rendering, shared by its guard calls.
type run struct {
	t                     *Template
	b                     Budget
	ctx                   context.Context
	steps, memory, output int64
	depth                 int
	slots                 [][]jinja.Value // per site: left operands and method receivers awaiting their guard
	err                   error
}

// fail records the first error; the library passes it up unchanged or wrapped,
// and Render returns this one.
func (r *run) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	return r.err
}

func (r *run) over(limit string, max int64, what string, s int) error {
	line := 0
	if s >= 0 {
		line = r.t.sites[s].line
	}
	return r.fail(&BudgetError{Template: r.t.name, Limit: limit, Max: max, What: what, Line: line})
}

// step spends n steps and notices cancellation.
func (r *run) step(n int64, s int) error {
	if err := r.ctx.Err(); err != nil {
		return r.fail(fmt.Errorf("%s: rendering stopped: %w", r.t.name, err))
	}
	r.steps += n
	if r.steps > r.b.MaxSteps {
		return r.over("MaxSteps", r.b.MaxSteps, "the work", s)
	}
	return nil
}

// alloc spends n bytes of memory (and the steps it takes to write them).
func (r *run) alloc(n int64, what string, s int) error {
	if err := r.room(n, what, s); err != nil {
		return err
	}
	r.memory += n
	return r.step(1+n/scanBytesPerStep, s)
}

// room checks that n more bytes fit in the memory budget.
func (r *run) room(n int64, what string, s int) error {
	if n > r.b.MaxMemory-r.memory {
		return r.over("MaxMemory", r.b.MaxMemory, what, s)
	}
	return nil
}

func (r *run) emit(n int64, s int) error {
	r.output += n
	if r.output > r.b.MaxOutput {
		return r.over("MaxOutput", r.b.MaxOutput, "the rendered text", s)
	}
	return r.step(1+n/scanBytesPerStep, s)
}

// guards returns the template variables through which the rewritten template runs.
func (r *run) guards() map[string]jinja.Value {
	fn := func(name string, f func(s int, args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error)) jinja.Value {
		return jinja.NewCallable(name, func(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
			if r.err != nil {
				return jinja.Undefined(), r.err
			}
			if len(args) == 0 || !args[0].IsInt() || int(args[0].AsInt()) >= len(r.t.sites) {
				return jinja.Undefined(), r.fail(fmt.Errorf("%s: guard %s called without its site", r.t.name, name))
			}
			return f(int(args[0].AsInt()), args[1:], kwargs)
		})
	}
	one := func(args []jinja.Value) jinja.Value {
		if len(args) == 0 {
			return jinja.Undefined()
		}
		return args[0]
	}
	return map[string]jinja.Value{
		guardOut: fn(guardOut, func(s int, args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			x := one(args)
			n, err := r.printed(x, &limit{field: "MaxOutput", max: r.b.MaxOutput, used: r.output, what: "the rendered text"}, s)
			if err == nil {
				err = r.emit(n, s)
			}
			return x, err
		}),
		guardBody: fn(guardBody, func(s int, _ []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			return jinja.None(), r.emit(int64(r.t.sites[s].text), s)
		}),
		guardIter: fn(guardIter, func(s int, args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			x := one(args)
			var n int64
			switch {
			case x.IsList():
				n = int64(x.AsList().Len())
			case x.IsDict(), x.IsString():
				n = shallowSize(x) // the loop makes a value per key or character
				if err := r.alloc(n*valueBytes, "the items of a for loop", s); err != nil {
					return x, err
				}
			}
			return x, r.step(1+n, s)
		}),
		guardLeft: fn(guardLeft, func(s int, args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			x := one(args)
			r.slots[s] = append(r.slots[s], x)
			return x, nil
		}),
		guardOp: fn(guardOp, func(s int, args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			y := one(args)
			x, err := r.pop(s)
			if err != nil {
				return y, err
			}
			n, err := r.predictOp(r.t.sites[s].name, x, y, s)
			if err == nil {
				err = r.alloc(n, "the result of "+r.t.sites[s].name, s)
			}
			return y, err
		}),
		guardValue: fn(guardValue, func(s int, args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			x := one(args)
			if r.t.sites[s].deep {
				_, err := r.walk(x, math.MaxInt64, s)
				return x, err
			}
			if x.IsString() { // indexing and slicing decode the whole string
				return x, r.alloc(4*int64(len(x.AsString())), "decoding a string", s)
			}
			return x, r.step(1, s)
		}),
		guardCall:   fn(guardCall, r.call),
		guardFilter: fn(guardFilter, r.filter),
		guardEmit: jinja.NewCallable(guardEmit, func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			return one(args), nil
		}),
		"range": jinja.NewCallable("range", r.rangeCall),
	}
}

func (r *run) pop(s int) (jinja.Value, error) {
	stack := r.slots[s]
	if len(stack) == 0 {
		return jinja.Undefined(), r.fail(fmt.Errorf("%s: guard at line %d lost its operand", r.t.name, r.t.sites[s].line))
	}
	x := stack[len(stack)-1]
	r.slots[s] = stack[:len(stack)-1]
	return x, nil
}

// call runs a macro, caller(), loop(), a global function or a method.
func (r *run) call(s int, args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	st := r.t.sites[s]
	if len(args) == 0 {
		return jinja.Undefined(), r.fail(fmt.Errorf("%s: guard call without a callee", r.t.name))
	}
	fn, rest := args[0], args[1:]
	if st.kind == siteMethod {
		recv, err := r.pop(s)
		if err != nil {
			return jinja.Undefined(), err
		}
		if err := r.checkMethod(st.name, recv, rest, kwargs, s); err != nil {
			return jinja.Undefined(), err
		}
	} else if fn.IsCallable() && deepCalls[fn.AsCallable().Name] {
		if err := r.walkArgs(rest, kwargs, s); err != nil {
			return jinja.Undefined(), err
		}
	}
	if fn.IsDict() {
		if c, ok := fn.AsDict().Get("__call__"); ok {
			fn = c
		}
	}
	if !fn.IsCallable() {
		what := "value"
		if st.name != "" {
			what = fmt.Sprintf("filter %q", st.name)
		}
		return jinja.Undefined(), fmt.Errorf("%s at line %d is not callable: %s", what, st.line, fn.String())
	}
	if err := r.step(1, s); err != nil {
		return jinja.Undefined(), err
	}
	r.depth++
	defer func() { r.depth-- }()
	if r.depth > r.b.MaxDepth {
		return jinja.Undefined(), r.over("MaxDepth", int64(r.b.MaxDepth), "calls nested "+fmt.Sprint(r.depth)+" deep", s)
	}
	res, err := fn.AsCallable().Fn(rest, kwargs)
	if r.err != nil {
		return jinja.Undefined(), r.err
	}
	if err != nil {
		return res, err
	}
	return res, r.alloc(shallowSize(res)*sizeFactor(res), "the result of a call", s)
}

// deepCalls are builtins that print or compare their arguments.
var deepCalls = map[string]bool{"loop.changed": true, "raise_exception": true, "joiner": true, "cycler": true}

func sizeFactor(v jinja.Value) int64 {
	if v.IsString() {
		return 1
	}
	return valueBytes
}

func (r *run) walkArgs(args []jinja.Value, kwargs map[string]jinja.Value, s int) error {
	for _, a := range args {
		if _, err := r.walk(a, math.MaxInt64, s); err != nil {
			return err
		}
	}
	for _, a := range kwargs {
		if _, err := r.walk(a, math.MaxInt64, s); err != nil {
			return err
		}
	}
	return nil
}

// checkMethod prices a method call on recv before it runs.
func (r *run) checkMethod(name string, recv jinja.Value, args []jinja.Value, kwargs map[string]jinja.Value, s int) error {
	if err := r.walkArgs(args, kwargs, s); err != nil {
		return err
	}
	if !recv.IsString() {
		if recv.IsList() || recv.IsDict() { // copies, scans and comparisons are linear
			return r.step(1+shallowSize(recv)/nodesPerStep, s)
		}
		return r.step(1, s)
	}
	str := recv.AsString()
	if err := r.step(1+int64(len(str))/scanBytesPerStep, s); err != nil {
		return err
	}
	var n int64
	switch name {
	case "replace":
		if len(args) >= 2 {
			count := int64(-1)
			if len(args) > 2 {
				count = toInt(args[2])
			}
			n = replacedSize(str, printValue(args[0]), printValue(args[1]), count)
		}
	case "split":
		n = int64(len(str)) + (int64(len(str))+1)*valueBytes
	case "format":
		var err error
		if n, err = r.formatSize(str, args, s); err != nil {
			return err
		}
	}
	return r.room(n, "the result of str."+name, s)
}

// formatSize is the size str.format(args…) builds, computed as the library
// substitutes ({i} everywhere, then the first {}), stopping at the budget.
func (r *run) formatSize(str string, args []jinja.Value, s int) (int64, error) {
	for i, a := range args {
		p := printValue(a)
		for _, placeholder := range []string{fmt.Sprintf("{%d}", i), "{}"} {
			count := int64(strings.Count(str, placeholder))
			if placeholder == "{}" {
				count = min(count, 1)
			}
			if n := int64(len(str)) + count*int64(len(p)); n > r.b.MaxMemory-r.memory {
				return 0, r.over("MaxMemory", r.b.MaxMemory, "the result of str.format", s)
			}
			if err := r.step(1+int64(len(str))/scanBytesPerStep, s); err != nil {
				return 0, err
			}
			if placeholder == "{}" {
				str = strings.Replace(str, placeholder, p, 1)
			} else {
				str = strings.ReplaceAll(str, placeholder, p)
			}
		}
	}
	return int64(len(str)), nil
}

// filter applies a builtin filter after pricing what it will build.
func (r *run) filter(s int, args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	name := r.t.sites[s].name
	f, ok := builtinFilter(name)
	if !ok {
		return jinja.Undefined(), r.fail(fmt.Errorf("%s: unknown filter %q", r.t.name, name))
	}
	delete(kwargs, "caller")
	if deepFilters[name] {
		if err := r.walkArgs(args, kwargs, s); err != nil {
			return jinja.Undefined(), err
		}
	} else if err := r.step(1, s); err != nil {
		return jinja.Undefined(), err
	}
	n, err := r.predictFilter(name, args, kwargs, s)
	if err == nil {
		err = r.room(n, "the result of filter "+name, s)
	}
	if err != nil {
		return jinja.Undefined(), err
	}
	res, err := f.Fn(args, kwargs)
	if r.err != nil {
		return jinja.Undefined(), r.err
	}
	if err != nil {
		return res, err
	}
	size := shallowSize(res) * sizeFactor(res)
	if name == "from_json" || name == "fromjson" {
		w, err := r.walk(res, math.MaxInt64, s)
		if err != nil {
			return jinja.Undefined(), err
		}
		size = w.nodes * valueBytes
	}
	return res, r.alloc(size, "the result of filter "+name, s)
}

// deepFilters print or compare their input or arguments all the way down.
var deepFilters = map[string]bool{"tojson": true, "string": true, "join": true, "sort": true, "unique": true,
	"dictsort": true, "max": true, "min": true, "select": true, "reject": true, "selectattr": true, "rejectattr": true,
	"map": true, "sum": true, "escape": true, "e": true, "replace": true, "indent": true, "upper": true, "lower": true,
	"title": true, "capitalize": true, "trim": true, "count": true, "wordcount": true}

// predictFilter is a bound on the bytes a filter builds (0 when it builds no
// more than its input), checked before the filter runs. It also spends the
// steps of filters slower than linear.
func (r *run) predictFilter(name string, args []jinja.Value, kwargs map[string]jinja.Value, s int) (int64, error) {
	if len(args) == 0 {
		return 0, nil
	}
	in := args[0]
	arg := func(i int, key string) (jinja.Value, bool) {
		if v, ok := kwargs[key]; ok {
			return v, true
		}
		if len(args) > i {
			return args[i], true
		}
		return jinja.Undefined(), false
	}
	items := itemCount(in)
	switch name {
	case "join":
		sep, _ := arg(1, "d")
		total := int64(len(printValue(sep))) * max(items-1, 0)
		for _, it := range iterItems(in) {
			n, err := r.printed(it, nil, s)
			if err != nil {
				return 0, err
			}
			total = satAdd(total, n)
		}
		return total, nil
	case "replace":
		if len(args) < 3 {
			return 0, nil
		}
		count := int64(-1)
		if c, ok := arg(3, "count"); ok {
			count = toInt(c)
		}
		str, err := r.printedString(in, s)
		if err != nil {
			return 0, err
		}
		return replacedSize(str, printValue(args[1]), printValue(args[2]), count), nil
	case "indent":
		str, err := r.printedString(in, s)
		if err != nil {
			return 0, err
		}
		width := int64(4)
		if w, ok := arg(1, "width"); ok {
			width = padWidth(w)
		}
		lines := int64(strings.Count(str, "\n")+strings.Count(str, "\r")+strings.Count(str, "\v")+strings.Count(str, "\f")+
			strings.Count(str, "\x1c")+strings.Count(str, "\x1d")+strings.Count(str, "\x1e")+
			strings.Count(str, "\u0085")+strings.Count(str, "\u2028")+strings.Count(str, "\u2029")) + 1
		return satAdd(int64(len(str)), satMul(lines, width)), nil
	case "tojson":
		w, err := r.walk(in, math.MaxInt64, s)
		if err != nil {
			return 0, err
		}
		indent := int64(0)
		if v, ok := arg(1, "indent"); ok {
			indent = padWidth(v)
		}
		return satAdd(w.bytes, satMul(w.nodes, satAdd(4, satMul(indent, int64(w.deepest+1))))), nil
	case "list", "items", "reverse":
		return satMul(items, 3*valueBytes), nil
	case "batch":
		n, _ := arg(1, "linecount")
		line := toInt(n)
		if line <= 0 || items == 0 {
			return 0, nil
		}
		batches := (items + line - 1) / line
		if fill, ok := arg(2, "fill_with"); ok && !fill.IsNone() {
			return satMul(satMul(batches, line), valueBytes), nil
		}
		return satMul(items+batches, valueBytes), nil
	case "escape", "e":
		str, err := r.printedString(in, s)
		return 6 * int64(len(str)), err
	case "string", "upper", "lower", "title", "capitalize":
		n, err := r.printed(in, nil, s)
		return satMul(n, 3), err
	case "unique":
		return satMul(items, valueBytes), r.step(satMul(items, items)/nodesPerStep, s)
	case "sort", "dictsort":
		return satMul(items, 3*valueBytes), r.step(items*int64(1+bitLen(items))/nodesPerStep, s)
	case "map":
		if _, ok := kwargs["attribute"]; ok || len(args) < 2 {
			return satMul(items, valueBytes), nil
		}
		inner := printValue(args[1])
		total := satMul(items, valueBytes)
		for _, it := range iterItems(in) {
			n, err := r.predictFilter(inner, append([]jinja.Value{it}, args[2:]...), kwargs, s)
			if err != nil {
				return 0, err
			}
			total = satAdd(total, n)
		}
		return total, nil
	case "from_json", "fromjson":
		return satMul(int64(len(printValue(in))), valueBytes), nil
	}
	return 0, nil
}

// padWidth is the width an indent argument pads with: a string is used as is, a number of spaces.
func padWidth(v jinja.Value) int64 {
	if v.IsString() {
		return int64(len(v.AsString()))
	}
	return max(toInt(v), 0)
}

func bitLen(n int64) int {
	b := 0
	for ; n > 0; n >>= 1 {
		b++
	}
	return b
}

// printedString is printValue(v), paid for; containers are sized first.
func (r *run) printedString(v jinja.Value, s int) (string, error) {
	if v.IsString() {
		return v.AsString(), r.step(1+int64(len(v.AsString()))/scanBytesPerStep, s)
	}
	if _, err := r.printed(v, r.memoryLimit("printing a value"), s); err != nil {
		return "", err
	}
	return printValue(v), nil
}

// replacedSize bounds strings.Replace(str, old, repl, count).
func replacedSize(str, old, repl string, count int64) int64 {
	var hits int64
	if old == "" {
		hits = int64(utf8.RuneCountInString(str)) + 1
	} else {
		hits = int64(strings.Count(str, old))
	}
	if count >= 0 {
		hits = min(hits, count)
	}
	return satAdd(int64(len(str)), satMul(hits, int64(len(repl))))
}

// predictOp is the size an operator builds from x and y.
func (r *run) predictOp(op string, x, y jinja.Value, s int) (int64, error) {
	switch op {
	case "+":
		switch {
		case x.IsString() && y.IsString():
			return int64(len(x.AsString()) + len(y.AsString())), nil
		case x.IsList() && y.IsList():
			return int64(x.AsList().Len()+y.AsList().Len()) * valueBytes, nil
		}
	case "~":
		l := r.memoryLimit("the result of ~")
		a, err := r.printed(x, l, s)
		if err != nil {
			return 0, err
		}
		l.used += a
		b, err := r.printed(y, l, s)
		return satAdd(a, b), err
	case "*":
		if (x.IsInt() || x.IsBool()) && (y.IsString() || y.IsList()) {
			x, y = y, x
		}
		if y.IsInt() || y.IsBool() {
			count := max(toInt(y), 0)
			if x.IsString() {
				return satMul(int64(len(x.AsString())), count), nil
			}
			if x.IsList() {
				return satMul(satMul(int64(x.AsList().Len()), count), valueBytes), nil
			}
		}
	case "%":
		if !x.IsString() {
			return 0, nil
		}
		format := x.AsString()
		args, err := r.printed(y, r.memoryLimit("the result of %"), s)
		if err != nil {
			return 0, err
		}
		// Widths and precisions are digit runs; "*" takes them from the arguments.
		n := satAdd(int64(len(format)), args)
		for _, f := range strings.FieldsFunc(format, func(c rune) bool { return c < '0' || c > '9' }) {
			n = satAdd(n, digits(f))
		}
		if strings.Contains(format, "*") {
			for _, a := range iterItems(y) {
				n = satAdd(n, max(toInt(a), 0))
			}
			n = satAdd(n, max(toInt(y), 0))
		}
		return n, nil
	}
	return 0, nil
}

// digits parses a run of digits, saturating.
func digits(f string) int64 {
	var n int64
	for _, c := range f {
		n = satAdd(satMul(n, 10), int64(c-'0'))
	}
	return n
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func satMul(a, b int64) int64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

// rangeCall is range() with Python's sandbox limit, sized before it is built.
func (r *run) rangeCall(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	if r.err != nil {
		return jinja.Undefined(), r.err
	}
	var start, stop, step int64 = 0, 0, 1
	switch len(args) {
	case 1:
		stop = toInt(args[0])
	case 2:
		start, stop = toInt(args[0]), toInt(args[1])
	case 3:
		start, stop, step = toInt(args[0]), toInt(args[1]), toInt(args[2])
	}
	var n uint64
	switch {
	case step > 0 && stop > start:
		n = (uint64(stop)-uint64(start)-1)/uint64(step) + 1
	case step < 0 && stop < start:
		n = (uint64(start)-uint64(stop)-1)/(uint64(-(step+1))+1) + 1
	}
	if n > uint64(r.b.MaxRange) {
		return jinja.Undefined(), r.over("MaxRange", int64(r.b.MaxRange), fmt.Sprintf("range() of %d items", n), -1)
	}
	if err := r.alloc(int64(n)*valueBytes, "a range", -1); err != nil {
		return jinja.Undefined(), err
	}
	return builtinRange().Fn(args, kwargs)
}

// walk checks the nesting of a value about to be compared and pays for visiting it.
func (r *run) walk(v jinja.Value, limitBytes int64, s int) (walker, error) {
	w := walker{maxDepth: r.b.MaxDepth, limitNodes: (r.b.MaxSteps - r.steps) * nodesPerStep, limitBytes: limitBytes}
	err := w.visit(v, 0, false)
	switch err {
	case nil:
		return w, r.step(1+w.nodes/nodesPerStep+w.bytes/scanBytesPerStep, s)
	case errTooDeep:
		return w, r.over("MaxDepth", int64(r.b.MaxDepth), fmt.Sprintf("a value nested more than %d levels deep", r.b.MaxDepth), s)
	case errTooManyNodes:
		return w, r.over("MaxSteps", r.b.MaxSteps, "walking a value", s)
	}
	return w, err
}

// printed is the size of printValue(v); with a limit (the room left in the
// output or memory budget) it fails once the size passes it.
func (r *run) printed(v jinja.Value, l *limit, s int) (int64, error) {
	room := int64(math.MaxInt64)
	if l != nil {
		room = l.room()
	}
	var n int64
	if v.IsString() {
		n = int64(len(v.AsString()))
	} else {
		w, err := r.walk(v, room, s)
		if err != nil && err != errTooLarge {
			return 0, err
		}
		n = w.bytes
		if err == errTooLarge {
			n = room + 1
		}
	}
	if n > room {
		return n, r.over(l.field, l.max, l.what, s)
	}
	return n, nil
}

// limit is the budget a printed size counts against.
type limit struct {
	field     string
	max, used int64
	what      string
}

func (l *limit) room() int64 { return l.max - l.used }

func (r *run) memoryLimit(what string) *limit {
	return &limit{field: "MaxMemory", max: r.b.MaxMemory, used: r.memory, what: what}
}

var (
	errTooDeep      = fmt.Errorf("value nested too deep")
	errTooManyNodes = fmt.Errorf("value too large to walk")
	errTooLarge     = fmt.Errorf("value too large to print")
)

// walker measures a value as the library prints and compares it: the whole
// unfolded tree (a list holding the same list twice prints it twice), bounded
// in depth, stopping at the limits; cycles print as [...]. Shared containers
// are measured once.
type walker struct {
	maxDepth               int
	limitNodes, limitBytes int64
	nodes, bytes           int64 // of the whole value, once visited
	deepest                int
	ancestors              []any
	memo                   map[any]measure
}

// measure is a subtree's unfolded size: values, printed bytes, height.
type measure struct {
	nodes, bytes int64
	height       int
	cyclic       bool // reaches an ancestor: depends on the path, not memoized
}

func (w *walker) visit(v jinja.Value, depth int, nested bool) error {
	m, err := w.measure(v, depth, nested)
	w.nodes, w.bytes, w.deepest = m.nodes, m.bytes, m.height
	return err
}

func (w *walker) measure(v jinja.Value, depth int, nested bool) (measure, error) {
	switch {
	case v.IsString():
		n := int64(len(v.AsString()))
		if nested {
			n = satAdd(4*n, 2)
		}
		return measure{nodes: 1, bytes: n}, w.check(1, n)
	case !v.IsList() && !v.IsDict():
		return measure{nodes: 1, bytes: 24}, nil
	}
	if depth >= w.maxDepth {
		return measure{}, errTooDeep
	}
	var key any
	if v.IsList() {
		key = v.AsList()
	} else {
		key = v.AsDict()
	}
	if m, ok := w.memo[key]; ok {
		if depth+m.height > w.maxDepth {
			return measure{}, errTooDeep
		}
		return m, w.check(m.nodes, m.bytes)
	}
	if slices.Contains(w.ancestors, key) {
		return measure{nodes: 1, bytes: 5, cyclic: true}, nil
	}
	w.ancestors = append(w.ancestors, key)
	defer func() { w.ancestors = w.ancestors[:len(w.ancestors)-1] }()
	m := measure{nodes: 1, bytes: 2}
	add := func(c measure, extra int64) error {
		m.nodes = satAdd(m.nodes, c.nodes)
		m.bytes = satAdd(m.bytes, satAdd(c.bytes, extra))
		m.height = max(m.height, c.height+1)
		m.cyclic = m.cyclic || c.cyclic
		return w.check(m.nodes, m.bytes)
	}
	if v.IsList() {
		for _, it := range v.AsList().Items {
			c, err := w.measure(it, depth+1, true)
			if err == nil {
				err = add(c, 2)
			}
			if err != nil {
				return measure{}, err
			}
		}
	} else {
		d := v.AsDict()
		for _, k := range d.Keys {
			val, _ := d.Get(k)
			c, err := w.measure(val, depth+1, true)
			if err == nil {
				err = add(c, satAdd(4*int64(len(k)), 6))
			}
			if err != nil {
				return measure{}, err
			}
		}
	}
	if !m.cyclic {
		if w.memo == nil {
			w.memo = map[any]measure{}
		}
		w.memo[key] = m
	}
	return m, nil
}

func (w *walker) check(nodes, bytes int64) error {
	switch {
	case nodes > w.limitNodes:
		return errTooManyNodes
	case bytes > w.limitBytes:
		return errTooLarge
	}
	return nil
}

// shallowSize is a value's own length: bytes of a string, items of a list or dict.
func shallowSize(v jinja.Value) int64 {
	switch {
	case v.IsString():
		return int64(len(v.AsString()))
	case v.IsList():
		return int64(v.AsList().Len())
	case v.IsDict():
		return int64(v.AsDict().Len())
	}
	return 0
}

func itemCount(v jinja.Value) int64 {
	if v.IsString() {
		return int64(utf8.RuneCountInString(v.AsString()))
	}
	return shallowSize(v)
}

// iterItems lists a list's items or a dict's keys (strings are priced by length).
func iterItems(v jinja.Value) []jinja.Value {
	switch {
	case v.IsList():
		return v.AsList().Items
	case v.IsDict():
		keys := make([]jinja.Value, 0, v.AsDict().Len())
		for _, k := range v.AsDict().Keys {
			keys = append(keys, jinja.NewString(k))
		}
		return keys
	}
	return nil
}

// printValue is how the library prints a value into output.
func printValue(v jinja.Value) string {
	switch {
	case v.IsString():
		return v.AsString()
	case v.IsUndefined(), v.IsCallable():
		return ""
	}
	return v.String()
}

// toInt converts as the library does for counts and indices.
func toInt(v jinja.Value) int64 {
	switch {
	case v.IsInt():
		return v.AsInt()
	case v.IsFloat():
		return int64(v.AsFloat())
	case v.IsBool():
		if v.AsBool() {
			return 1
		}
	case v.IsString():
		var n int64
		_, _ = fmt.Sscanf(v.AsString(), "%d", &n)
		return n
	}
	return 0
}

// The library's builtins, reached through its own scope once and kept: range
// (which the sandbox's bounded range calls) and the filters by name.
var (
	builtinsMu sync.Mutex
	builtins   = map[string]jinja.Value{}
)

func lookupBuiltin(expr string) jinja.Value {
	builtinsMu.Lock()
	defer builtinsMu.Unlock()
	if v, ok := builtins[expr]; ok {
		return v
	}
	v := jinja.Undefined()
	if t, err := jinja.Compile("{% set ns.v = " + expr + " %}"); err == nil {
		ns := jinja.NewDict()
		if _, err := t.RenderValues(map[string]jinja.Value{"ns": ns}); err == nil {
			v, _ = ns.AsDict().Get("v")
		}
	}
	builtins[expr] = v
	return v
}

func builtinRange() *jinja.Callable { return lookupBuiltin("range").AsCallable() }

// builtinFilter returns the library's filter called name.
func builtinFilter(name string) (*jinja.Callable, bool) {
	for i := 0; i < len(name); i++ {
		if !isIdentByte(name[i]) {
			return nil, false
		}
	}
	v := lookupBuiltin("__filter_" + name)
	if !v.IsCallable() {
		return nil, false
	}
	return v.AsCallable(), true
}
