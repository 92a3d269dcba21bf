package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// adapterFixture is an adapter handbook trained (tools/oracle/lorasave) on the llama_gqa fixture.
const adapterFixture = "../../lora/testdata/go_adapter"

// TestMergeEqualsAdapter: eval with --adapter and eval of the merged checkpoint give the same loss,
// and it differs from the base model's.
func TestMergeEqualsAdapter(t *testing.T) {
	out := filepath.Join(t.TempDir(), "merged")
	code, stdout, stderr := runCLI(t, "merge", "--model", fixture, "--adapter", adapterFixture, "--out", out)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "merged 8 adapted modules")
	assert.FileExists(t, filepath.Join(out, "model.safetensors"))
	assert.FileExists(t, filepath.Join(out, "generation_config.json"))

	tokens := filepath.Join(t.TempDir(), "tokens.json")
	ref := readReference(t)
	data, err := json.Marshal(ref.InputIDs)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(tokens, data, 0o644))
	base := evalLoss(t, "--tokens", tokens, "--model", fixture)
	adapted := evalLoss(t, "--tokens", tokens, "--model", fixture, "--adapter", adapterFixture)
	merged := evalLoss(t, "--tokens", tokens, "--model", out)
	assert.InDelta(t, adapted, merged, 1e-5)
	assert.Greater(t, abs(adapted-base), 1e-3, "the adapter changes the model")

	code, _, stderr = runCLI(t, "generate", "--model", fixture, "--adapter", adapterFixture, "--prompt_ids", "5,6,7",
		"--max_new_tokens", "4", "--json")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "adapter")

	code, _, stderr = runCLI(t, "merge", "--model", "../../testdata/models/gemma", "--adapter", adapterFixture, "--out", t.TempDir())
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "shape")
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestLoRADemoIsMergeable trains the bundled LoRA recipe (a from-scratch base) for two steps: its
// output names the base saved beside it, so merge works without --model and the merged model
// scores as the base with the adapter does.
func TestLoRADemoIsMergeable(t *testing.T) {
	t.Chdir("../..")
	out := filepath.Join(t.TempDir(), "lora")
	code, stdout, stderr := runCLI(t, "sft", "recipes/tiny/sft/config_lora.yaml", "--max_steps=2", "--eval_strategy=no",
		"--report_to=none", "--per_device_train_batch_size=8", "--output_dir="+out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "trained 2 steps")
	base := filepath.Join(out, "base_model")
	assert.FileExists(t, filepath.Join(base, "model.safetensors"))
	var cfg struct {
		BaseModel string `json:"base_model_name_or_path"`
	}
	require.NoError(t, json.Unmarshal(must(os.ReadFile(filepath.Join(out, "adapter_config.json"))), &cfg))
	assert.Equal(t, base, cfg.BaseModel)

	merged := filepath.Join(t.TempDir(), "merged")
	code, stdout, stderr = runCLI(t, "merge", "--adapter", out, "--out", merged)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "merged")
	data := filepath.Join(t.TempDir(), "eval.jsonl")
	require.NoError(t, os.WriteFile(data, []byte(`{"text": "<|im_start|>user\nsort: cab<|im_end|>\n<|im_start|>assistant\nabc<|im_end|>"}`+"\n"), 0o644))
	assert.InDelta(t, evalLoss(t, "--data", data, "--model", base, "--adapter", out), evalLoss(t, "--data", data, "--model", merged), 1e-4)
}

// evalLoss runs `handbook eval --json` with args and returns its loss.
func evalLoss(t *testing.T, args ...string) float64 {
	t.Helper()
	code, stdout, stderr := runCLI(t, append([]string{"eval", "--json"}, args...)...)
	require.Equal(t, 0, code, stderr)
	var r struct{ Loss float64 }
	require.NoError(t, json.Unmarshal([]byte(lastLine(stdout)), &r))
	return r.Loss
}
