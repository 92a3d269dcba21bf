package handbook

import (
	"maps"
	"reflect"
	"slices"
	"strings"
)

// ignoredKeys are accepted in recipes and ignored: each names behaviour of the
// Python stack with no counterpart here. The value says why; it ends the
// warning a recipe that sets the key gets.
var ignoredKeys = map[string]string{
	"use_flash_attention_2":         "the legacy switch; set attn_implementation: flash_attention_2 instead",
	"trust_remote_code":             "no Python model code runs here; only the model package's built-in architectures load",
	"use_liger_kernel":              "there are no Liger kernels; the model package's own ops are used",
	"dataset_num_proc":              "preprocessing runs in this process; there are no worker processes to size",
	"preprocessing_num_workers":     "preprocessing runs in this process; there are no worker processes to size",
	"ddp_timeout":                   "there is no torch.distributed process group",
	"gradient_checkpointing_kwargs": "PyTorch checkpoint options such as use_reentrant have no counterpart",
	"tf32":                          "TF32 matmuls are a CUDA/PyTorch switch",
	"overwrite_hub_revision":        "an existing hub_model_revision branch is pushed to as it is, never deleted",
}

// aliases map older spellings of keys onto the key they set.
var aliases = map[string]string{
	"torch_dtype":         "dtype",
	"evaluation_strategy": "eval_strategy",
	"max_seq_length":      "max_length",
	"text_column":         "dataset_text_field",
}

// IgnoredKeys returns the keys recipes may set that have no effect here, each
// with the reason. A recipe that sets one to anything but false, null, zero or
// empty gets one warning naming it; its value is kept in Recipe.Ignored.
func IgnoredKeys() map[string]string {
	return maps.Clone(ignoredKeys)
}

// key is one recipe key with a typed home in Recipe.
type key struct {
	name  string
	index []int        // field index path from Recipe
	typ   reflect.Type // the field's type
	tasks []Task       // tasks that accept it; nil means all
}

// keys maps every typed recipe key to its field, built from the struct tags of
// the argument types.
var keys = buildKeys()

func buildKeys() map[string]key {
	out := map[string]key{}
	rt := reflect.TypeFor[Recipe]()
	for _, section := range []string{"Model", "Data", "Training"} {
		f, _ := rt.FieldByName(section)
		addKeys(out, f.Type, f.Index)
	}
	return out
}

func addKeys(out map[string]key, t reflect.Type, index []int) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		idx := append(slices.Clone(index), i)
		switch {
		case opts == "squash":
			addKeys(out, f.Type, idx)
		case name == "" || name == "-":
		default:
			k := key{name: name, index: idx, typ: f.Type}
			if ts := f.Tag.Get("task"); ts != "" {
				for _, s := range strings.Split(ts, ",") {
					k.tasks = append(k.tasks, Task(s))
				}
			}
			out[name] = k
		}
	}
}

// accepts reports whether task accepts the key.
func (k key) accepts(task Task) bool {
	return k.tasks == nil || slices.Contains(k.tasks, task)
}

// knownNames are the keys task accepts, for did-you-mean suggestions.
func knownNames(task Task) []string {
	var names []string
	for name, k := range keys {
		if k.accepts(task) {
			names = append(names, name)
		}
	}
	names = append(names, slices.Collect(maps.Keys(ignoredKeys))...)
	names = append(names, slices.Collect(maps.Keys(aliases))...)
	slices.Sort(names)
	return names
}

// suggest returns " (did you mean "x"?)" for the candidate closest to name, or
// "" when none is close.
func suggest(name string, candidates []string) string {
	best, bestD := "", len(name)/3+2
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return ` (did you mean "` + best + `"?)`
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
