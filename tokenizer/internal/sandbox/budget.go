package sandbox

import "fmt"

// Budget bounds one rendering. Zero fields take the defaults of DefaultBudget.
type Budget struct {
	// MaxRange is the most items one range() may produce (Python's sandbox: MAX_RANGE = 100000).
	MaxRange int
	// MaxDepth bounds nested calls of macros, caller() and recursive loops, and the
	// nesting of any value a template prints or compares. Python's Jinja fails on
	// macro recursion near 200 levels (RecursionError); a Go stack overflow is fatal.
	MaxDepth int
	// MaxOutput is the most bytes of text a rendering may produce, counting what
	// macros and {% set %} blocks render before it is used.
	MaxOutput int64
	// MaxMemory is the most bytes of strings, lists and dicts the template's
	// expressions may build in one rendering, in total.
	MaxMemory int64
	// MaxSteps is the work a rendering may do: a step per loop iteration, call,
	// filter, test and operator, plus one per 4 KiB of text scanned and one per 8
	// values visited when a value is compared or printed.
	MaxSteps int64
}

// DefaultBudget is generous for real chat templates — far above what the
// templates of Llama, Qwen, Mistral, Gemma, SmolLM and Zephyr need for a
// conversation of thousands of turns — and stops hostile ones within seconds.
func DefaultBudget() Budget {
	return Budget{MaxRange: 100_000, MaxDepth: 256, MaxOutput: 64 << 20, MaxMemory: 256 << 20, MaxSteps: 1_000_000}
}

func (b Budget) withDefaults() Budget {
	d := DefaultBudget()
	if b.MaxRange <= 0 {
		b.MaxRange = d.MaxRange
	}
	if b.MaxDepth <= 0 {
		b.MaxDepth = d.MaxDepth
	}
	if b.MaxOutput <= 0 {
		b.MaxOutput = d.MaxOutput
	}
	if b.MaxMemory <= 0 {
		b.MaxMemory = d.MaxMemory
	}
	if b.MaxSteps <= 0 {
		b.MaxSteps = d.MaxSteps
	}
	return b
}

// BudgetError is a rendering stopped by its budget.
type BudgetError struct {
	Template string
	// Limit is the Budget field that was exceeded ("MaxSteps", …).
	Limit string
	Max   int64
	// What says what ran over, Line where (0: unknown).
	What string
	Line int
}

func (e *BudgetError) Error() string {
	at := ""
	if e.Line > 0 {
		at = fmt.Sprintf(" at line %d", e.Line)
	}
	return fmt.Sprintf("%s: %s%s exceeds the rendering budget (%s = %d)", e.Template, e.What, at, e.Limit, e.Max)
}
