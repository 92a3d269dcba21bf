package handbook

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/safetensors"
)

// runLogged runs a recipe with overrides and returns the run's log.
func runLogged(t *testing.T, path string, task Task, overrides ...string) (*RunResult, string) {
	t.Helper()
	r, err := LoadRecipe(path, task, overrides)
	require.NoError(t, err)
	var logs bytes.Buffer
	res, err := Run(context.Background(), r, RunOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err, logs.String())
	return res, logs.String()
}

// dtypesIn returns each tensor's dtype in a safetensors file.
func dtypesIn(t *testing.T, path string) map[string]safetensors.DType {
	t.Helper()
	f, err := safetensors.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string]safetensors.DType{}
	for _, n := range f.Names() {
		ts, err := f.Tensor(n)
		require.NoError(t, err)
		out[n] = ts.DType
	}
	return out
}

// TestRunBF16 is `handbook sft RECIPE --bf16=true --dtype=bfloat16`: the weights load and train in
// bf16 (autocast matmuls, float32 masters), nothing warns that they stay float32, the saved model
// is bf16 with torch_dtype bfloat16, and the checkpoint keeps the float32 masters next to the
// optimizer state.
func TestRunBF16(t *testing.T) {
	out := t.TempDir()
	res, logs := runLogged(t, tinyRecipe, TaskSFT, "--bf16=true", "--dtype=bfloat16", "--attn_implementation=sdpa",
		"--max_steps=3", "--save_steps=3", "--eval_strategy=no", "--output_dir="+out)
	assert.Equal(t, 3, res.Train.GlobalStep)
	assert.NotContains(t, logs, "stay float32")
	assert.Equal(t, 1, strings.Count(logs, "falling back to eager"), "one line per reason (here: no bf16 fused kernel on the Go backend)")
	assert.Contains(t, logs, "weights=bfloat16 bf16_autocast=true attn_implementation=sdpa")
	for name, dt := range dtypesIn(t, filepath.Join(out, "model.safetensors")) {
		assert.Equal(t, safetensors.BF16, dt, name)
	}
	var cfg struct {
		TorchDType string `json:"torch_dtype"`
	}
	raw, err := os.ReadFile(filepath.Join(out, "config.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &cfg))
	assert.Equal(t, "bfloat16", cfg.TorchDType)
	opt := dtypesIn(t, filepath.Join(out, "checkpoint-3", "optimizer.safetensors"))
	assert.Equal(t, safetensors.F32, opt["master/model.embed_tokens.weight"], "float32 master of a bf16 weight")
	assert.Equal(t, safetensors.F32, opt["exp_avg/model.embed_tokens.weight"])
}

// TestRunBF16LoRA trains a LoRA adapter on a bf16 base: the adapter stays float32 (PEFT's
// autocast_adapter_dtype) with no master copy, and is saved float32.
func TestRunBF16LoRA(t *testing.T) {
	out := t.TempDir()
	_, logs := runLogged(t, "recipes/tiny/sft/config_lora.yaml", TaskSFT, "--model_name_or_path=recipes/tiny/model", "--bf16=true",
		"--dtype=bfloat16", "--max_steps=3", "--save_steps=3", "--eval_strategy=no", "--output_dir="+out)
	assert.Contains(t, logs, "weights=bfloat16 bf16_autocast=true")
	adapter := dtypesIn(t, filepath.Join(out, "adapter_model.safetensors"))
	require.NotEmpty(t, adapter)
	for name, dt := range adapter {
		assert.Equal(t, safetensors.F32, dt, name)
	}
	// The recipe's modules_to_save (embed_tokens, lm_head) train in full: bf16 weights, float32
	// masters. The float32 adapter weights are their own master.
	opt := dtypesIn(t, filepath.Join(out, "checkpoint-3", "optimizer.safetensors"))
	var masters []string
	for name := range opt {
		if strings.HasPrefix(name, "master/") {
			masters = append(masters, name)
		}
	}
	assert.ElementsMatch(t, []string{"master/lm_head.weight", "master/model.embed_tokens.weight"}, masters)
	assert.Equal(t, safetensors.F32, opt["exp_avg/model.layers.0.self_attn.q_proj.lora_A.weight"])
}

// TestRunBF16DPO runs full DPO on a bf16 model: the frozen reference copy is taken from the bf16
// weights (dpo's copyModel keeps their dtype) and the policy trains through float32 masters.
func TestRunBF16DPO(t *testing.T) {
	out := t.TempDir()
	res, logs := runLogged(t, "recipes/tiny/dpo/config_full.yaml", TaskDPO, "--model_name_or_path=recipes/tiny/model", "--bf16=true",
		"--dtype=bfloat16", "--max_steps=2", "--eval_strategy=no", "--save_steps=2", "--output_dir="+out)
	assert.Equal(t, 2, res.Train.GlobalStep)
	assert.Contains(t, logs, "weights=bfloat16 bf16_autocast=true")
	for name, dt := range dtypesIn(t, filepath.Join(out, "model.safetensors")) {
		assert.Equal(t, safetensors.BF16, dt, name)
	}
	assert.Equal(t, safetensors.F32, dtypesIn(t, filepath.Join(out, "checkpoint-2", "optimizer.safetensors"))["master/lm_head.weight"])
}
