package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gomlx/compute/dtypes"

	"handbook"
	"handbook/backend"
	"handbook/lora"
	"handbook/model"
	"handbook/tokenizer"
)

// revisionFlag adds --revision, the Hub revision of the repository ids the command takes.
func revisionFlag(fs *flag.FlagSet) *string {
	return fs.String("revision", "", "Hub revision (branch, tag or commit) of the repository id given instead of a model or tokenizer directory (default main; adapters are read from main)")
}

// resolveDir replaces the value of flag name, when it is a Hub repository id rather than a local
// directory, by the local snapshot of that repository at revision (downloaded into the Hugging
// Face cache).
func resolveDir(ctx context.Context, name string, v *string, revision string) error {
	if *v == "" {
		return nil
	}
	dir, err := handbook.ModelDir(ctx, *v, revision)
	if err != nil {
		return fmt.Errorf("--%s %s: %w", name, *v, err)
	}
	*v = dir
	return nil
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("handbook "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// loadModelWithAdapter loads the model in dir and applies the PEFT LoRA adapter in adapterDir on
// top of it ("" for none).
func loadModelWithAdapter(dir, adapterDir string, stderr io.Writer) (*model.Model, error) {
	m, err := loadModel(dir, stderr)
	if err != nil || adapterDir == "" {
		return m, err
	}
	a, err := lora.Load(m, adapterDir)
	if err != nil {
		m.Finalize()
		return nil, err
	}
	fmt.Fprintf(stderr, "adapter %s: %d modules, r=%d, scale %.4g\n", adapterDir, len(a.Modules), a.Config.R, a.Scale())
	return m, nil
}

// loadModel starts the backend (logging the one line saying which and why) and loads dir.
func loadModel(dir string, stderr io.Writer) (*model.Model, error) {
	if dir == "" {
		return nil, fmt.Errorf("--model is required")
	}
	b, sel, err := backend.New()
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(stderr, sel)
	return model.Load(b, dir, model.LoadOptions{})
}

// loadTokenizer loads the tokenizer saved beside a model, else beside its adapter (a LoRA run's
// output carries one), or returns nil when there is none.
func loadTokenizer(dirs ...string) (*tokenizer.Tokenizer, error) {
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); dir != "" && err == nil {
			return tokenizer.Load(dir)
		}
	}
	return nil, nil
}

// parseIDs reads "1,2,3"; an empty field ("1,,2") is an error, not skipped.
func parseIDs(s string) ([]int32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("no token ids in %q", s)
	}
	fields := strings.Split(s, ",")
	ids := make([]int32, len(fields))
	for i, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, fmt.Errorf("token id #%d of %q is empty", i+1, s)
		}
		v, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("token id #%d %q: want an integer", i+1, f)
		}
		ids[i] = int32(v)
	}
	return ids, nil
}

// numberCheck is one numeric flag's rule: the value must satisfy ok, else the
// error names the flag, the value and want.
type numberCheck struct {
	flag  string
	value float64
	ok    bool
	want  string
}

// checkNumbers returns the first failed check as an error naming its flag.
func checkNumbers(checks ...numberCheck) error {
	for _, c := range checks {
		if !c.ok {
			return fmt.Errorf("--%s %v: want %s", c.flag, c.value, c.want)
		}
	}
	return nil
}

// atLeast checks an integer flag against a minimum.
func atLeast(flag string, v, min int) numberCheck {
	want := fmt.Sprintf("an integer ≥ %d", min)
	return numberCheck{flag: flag, value: float64(v), ok: v >= min, want: want}
}

// finite checks a float flag is a number (not NaN or ±Inf) and satisfies ok.
func finite(flag string, v float64, ok bool, want string) numberCheck {
	return numberCheck{flag: flag, value: v, ok: !math.IsNaN(v) && !math.IsInf(v, 0) && ok, want: want}
}

func toInt32s(ids []int) []int32 {
	out := make([]int32, len(ids))
	for i, v := range ids {
		out[i] = int32(v)
	}
	return out
}

func toInts(ids []int32) []int {
	out := make([]int, len(ids))
	for i, v := range ids {
		out[i] = int(v)
	}
	return out
}

// dtypeFlag maps a --dtype flag's torch name onto the dtype weights are kept in.
func dtypeFlag(name string) (dtypes.DType, error) {
	switch name {
	case "float32":
		return dtypes.Float32, nil
	case "bfloat16":
		return dtypes.BFloat16, nil
	}
	return dtypes.InvalidDType, fmt.Errorf("--dtype %q: want float32 or bfloat16", name)
}

// printJSON writes v as one line: the machine-readable contract of --json. Chat markup stays
// readable (<|im_end|>, not \u003c|im_end|\u003e).
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func modelInputs(ids []int32) model.Inputs {
	return model.Inputs{IDs: [][]int32{ids}}
}

// takeFlags removes the CLI's own flags from a recipe command line (the rest are the recipe path
// and its --key=value overrides) and returns their values. Value flags accept `--name=v` and
// `--name v`; names listed in bools take no value.
func takeFlags(args []string, values, bools []string) (found map[string]string, rest []string, err error) {
	found = map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case !strings.HasPrefix(a, "--"):
		case slices.Contains(bools, name):
			if hasValue {
				if _, err := strconv.ParseBool(value); err != nil {
					return nil, nil, fmt.Errorf("--%s: want true or false, got %q", name, value)
				}
			} else {
				value = "true"
			}
			found[name] = value
			continue
		case slices.Contains(values, name):
			if !hasValue {
				if i+1 >= len(args) {
					return nil, nil, fmt.Errorf("--%s needs a value", name)
				}
				i++
				value = args[i]
			}
			found[name] = value
			continue
		}
		rest = append(rest, a)
	}
	return found, rest, nil
}

// countFlag parses a non-negative count flag taken by takeFlags (def when absent).
func countFlag(found map[string]string, name string, def int) (int, error) {
	v, ok := found[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("--%s: want a count, got %q", name, v)
	}
	return n, nil
}
