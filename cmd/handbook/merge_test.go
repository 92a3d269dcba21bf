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
	loss := func(args ...string) float64 {
		t.Helper()
		code, stdout, stderr := runCLI(t, append([]string{"eval", "--tokens", tokens, "--json"}, args...)...)
		require.Equal(t, 0, code, stderr)
		var r struct{ Loss float64 }
		require.NoError(t, json.Unmarshal([]byte(lastLine(stdout)), &r))
		return r.Loss
	}
	base := loss("--model", fixture)
	adapted := loss("--model", fixture, "--adapter", adapterFixture)
	merged := loss("--model", out)
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
