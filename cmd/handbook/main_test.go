package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/model"
)

const fixture = "../../testdata/models/llama_gqa"

// lastLine returns the last non-empty line, the --json contract.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("GOMLX_BACKEND", "go")
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

type referenceFile struct {
	InputIDs [][]int32 `json:"input_ids"`
	Loss     float64   `json:"loss"`
	Greedy   struct {
		PromptIDs []int32 `json:"prompt_ids"`
		NewIDs    []int32 `json:"new_ids"`
	} `json:"greedy"`
}

func readReference(t *testing.T) referenceFile {
	data, err := os.ReadFile(filepath.Join(fixture, "reference.json"))
	require.NoError(t, err)
	var r referenceFile
	require.NoError(t, json.Unmarshal(data, &r))
	return r
}

func TestGenerateJSONIsTransformersGreedy(t *testing.T) {
	ref := readReference(t)
	ids := make([]string, len(ref.Greedy.PromptIDs))
	for i, id := range ref.Greedy.PromptIDs {
		ids[i] = strings.TrimSpace(string(must(json.Marshal(id))))
	}
	// The fixture's generation_config names an EOS id; transformers' reference ran without one,
	// so compare the prefix up to our first stop.
	code, stdout, stderr := runCLI(t, "generate", "--model", fixture, "--prompt_ids", strings.Join(ids, ","),
		"--max_new_tokens", "32", "--json")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "backend go")
	var got struct {
		IDs  []int32 `json:"ids"`
		Text string  `json:"text"`
	}
	require.NoError(t, json.Unmarshal([]byte(lastLine(stdout)), &got))
	require.NotEmpty(t, got.IDs)
	assert.Equal(t, ref.Greedy.NewIDs[:len(got.IDs)], got.IDs)
}

func TestEvalJSONIsTransformersLoss(t *testing.T) {
	ref := readReference(t)
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	require.NoError(t, os.WriteFile(tokens, must(json.Marshal(ref.InputIDs)), 0o644))
	code, stdout, stderr := runCLI(t, "eval", "--model", fixture, "--tokens", tokens, "--json")
	require.Equal(t, 0, code, stderr)
	var got struct {
		Loss       float64 `json:"loss"`
		Perplexity float64 `json:"perplexity"`
		Tokens     int     `json:"tokens"`
	}
	require.NoError(t, json.Unmarshal([]byte(lastLine(stdout)), &got))
	assert.InDelta(t, ref.Loss, got.Loss, 1e-5)
	assert.Equal(t, len(ref.InputIDs)*(len(ref.InputIDs[0])-1), got.Tokens)
	assert.InEpsilon(t, 186.2429, got.Perplexity, 1e-4)
}

func TestCLIErrors(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(tokens, []byte(`[[1, 999999]]`), 0o644))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"no model", []string{"generate", "--prompt_ids", "1"}, "--model is required"},
		{"both prompts", []string{"generate", "--model", fixture, "--prompt", "hi", "--prompt_ids", "1"}, "exactly one of --prompt, --prompt_ids and --messages"},
		{"bad ids", []string{"generate", "--model", fixture, "--prompt_ids", "1,x"}, `token id #2 "x"`},
		{"text without tokenizer", []string{"generate", "--model", fixture, "--prompt", "hi"}, "need tokenizer.json"},
		{"id outside vocab", []string{"eval", "--model", fixture, "--tokens", tokens}, "token id 999999 is outside the vocabulary"},
		{"missing model dir", []string{"eval", "--model", "/nonexistent", "--tokens", tokens}, "/nonexistent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			assert.NotEqual(t, 0, code)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestNumberFlagsAreValidated: every numeric flag out of its range is an error naming the flag,
// never silently ignored, defaulted or overflowed.
func TestNumberFlagsAreValidated(t *testing.T) {
	gen := []string{"generate", "--model", fixture, "--prompt_ids", "1,2,3"}
	est := []string{"estimate", "--model", "../../recipes/tiny/model"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(gen, "--do_sample", "--temperature", "0"), "--temperature 0: want a number > 0"},
		{append(gen, "--do_sample", "--temperature", "-1"), "--temperature -1"},
		{append(gen, "--do_sample", "--temperature", "nan"), "--temperature NaN"},
		{append(gen, "--do_sample", "--top_p", "0"), "--top_p 0: want a number in (0, 1]"},
		{append(gen, "--do_sample", "--top_p", "2"), "--top_p 2"},
		{append(gen, "--do_sample", "--top_k", "-5"), "--top_k -5: want an integer ≥ 0"},
		{append(gen, "--max_new_tokens", "0"), "--max_new_tokens 0: want an integer ≥ 1"},
		{[]string{"generate", "--model", fixture, "--prompt_ids", "1,,2"}, "token id #2 of \"1,,2\" is empty"},
		{[]string{"tokenize", "--tokenizer", "../../recipes/tiny/model", "--decode", "3,"}, "token id #2 of \"3,\" is empty"},
		{append(est, "--seq", "-5"), "--seq -5: want an integer ≥ 0"},
		{append(est, "--batch", "0"), "--batch 0: want an integer ≥ 1"},
		{append(est, "--num_devices", "-2"), "--num_devices -2"},
		{append(est, "--zero_stage", "4"), "--zero_stage 4: want 0, 1, 2 or 3"},
		{append(est, "--lora", "--lora_r", "0"), "--lora_r 0"},
		{append(est, "--seq", "1000000000", "--batch", "1000000000"), "overflow"},
		{[]string{"sft", "/dev/zero"}, "/dev/zero: larger than 1024 KiB, not a recipe"},
	} {
		t.Run(strings.Join(tc.args[1:], " "), func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			assert.Equal(t, 1, code)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

// TestGenerateFitsTheModelsPositions: a continuation is capped at the model's positions, with a
// note, and sampling flags without --do_sample are reported as unused.
func TestGenerateFitsTheModelsPositions(t *testing.T) {
	ids := strings.TrimSuffix(strings.Repeat("5,", 120), ",")
	code, stdout, stderr := runCLI(t, "generate", "--model", fixture, "--prompt_ids", ids, "--max_new_tokens", "50",
		"--temperature", "0.5", "--json")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "--max_new_tokens capped at 8: the prompt has 120 tokens and the model 128 positions")
	assert.Contains(t, stderr, "--temperature only apply with --do_sample")
	var r struct{ IDs []int32 }
	require.NoError(t, json.Unmarshal([]byte(lastLine(stdout)), &r))
	assert.LessOrEqual(t, len(r.IDs), 8)

	code, _, stderr = runCLI(t, "generate", "--model", fixture, "--prompt_ids", strings.TrimSuffix(strings.Repeat("5,", 128), ","))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "the prompt has 128 tokens; the model has 128 positions")
}

// TestJSONOutputKeepsChatMarkup: --json prints chat markup as it is, as Python's json.dumps with
// ensure_ascii=False would, not as \u003c…\u003e.
func TestJSONOutputKeepsChatMarkup(t *testing.T) {
	code, stdout, stderr := runCLI(t, "tokenize", "--tokenizer", "../../recipes/tiny/model", "--text", "<|im_end|>", "--json")
	require.Equal(t, 0, code, stderr)
	var enc struct{ IDs []int }
	require.NoError(t, json.Unmarshal([]byte(lastLine(stdout)), &enc))
	ids := strings.Trim(strings.Join(strings.Fields(strings.Trim(fmt.Sprint(enc.IDs), "[]")), ","), ",")
	code, stdout, stderr = runCLI(t, "tokenize", "--tokenizer", "../../recipes/tiny/model", "--decode", ids, "--json")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, `{"text":"<|im_end|>"}`, lastLine(stdout))
}

// TestEvalFailsInsteadOfNaN: an empty data file and a model whose loss is NaN are errors, not a
// NaN score (which --json could not even print).
func TestEvalFailsInsteadOfNaN(t *testing.T) {
	dir := demoModel(t)
	empty := filepath.Join(t.TempDir(), "empty.jsonl")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	code, _, stderr := runCLI(t, "eval", "--model", dir, "--data", empty, "--json")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "nothing to score: "+empty+" has no text")

	broken := demoModel(t, func(w model.Weights) {
		norm := w["model.norm.weight"]
		nan := make([]float32, norm.Shape().Size())
		for i := range nan {
			nan[i] = float32(math.NaN())
		}
		w["model.norm.weight"] = tensors.FromFlatDataAndDimensions(nan, norm.Shape().Dimensions...)
	})
	text := filepath.Join(t.TempDir(), "text.jsonl")
	require.NoError(t, os.WriteFile(text, []byte(`{"text": "abc def"}`+"\n"), 0o644))
	code, _, stderr = runCLI(t, "eval", "--model", broken, "--data", text, "--json")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "loss over")
	assert.Contains(t, stderr, "is NaN")
}
