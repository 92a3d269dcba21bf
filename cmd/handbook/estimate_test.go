package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEstimateMistral7B: the stage-3 model states train.Engine keeps for bf16 weights, (2+4+12)Ψ/N,
// for Mistral-7B on 8 devices, with Ψ from the architecture's closed form.
func TestEstimateMistral7B(t *testing.T) {
	code, stdout, stderr := runCLI(t, "estimate", "--model", "../../zero/testdata/mistral7b_config.json",
		"--zero_stage", "3", "--num_devices", "8", "--json")
	require.Equal(t, 0, code, stderr)
	var got struct {
		Parameters  int64 `json:"parameters_bytes"`
		Gradients   int64 `json:"gradients_bytes"`
		Optimizer   int64 `json:"optimizer_bytes"`
		Activations int64 `json:"activations_bytes"`
		ModelStates int64 `json:"model_state_bytes_per_device"`
	}
	require.NoError(t, json.Unmarshal([]byte(lastLine(stdout)), &got))
	const h, inter, layers, kv, vocab = 4096, 14336, 32, 1024, 32000
	psi := float64(2*vocab*h + layers*(2*h*h+2*h*kv+3*h*inter+2*h) + h)
	assert.InEpsilon(t, 18*psi/8, float64(got.ModelStates), 0.01)
	assert.InEpsilon(t, 2*psi/8, float64(got.Parameters), 0.01)
	assert.InEpsilon(t, 4*psi/8, float64(got.Gradients), 0.01)
	assert.InEpsilon(t, 12*psi/8, float64(got.Optimizer), 0.01)
	assert.Zero(t, got.Activations)
}

// TestEstimateGPUMemory: the seed's LoRA run (Mistral-7B, r 16 all-linear, bf16 base, seq 2048,
// checkpointing) fits a 24 GiB GPU; the same model fully fine-tuned on one does not.
func TestEstimateGPUMemory(t *testing.T) {
	var got struct {
		Total    int64 `json:"total_bytes"`
		Capacity int64 `json:"gpu_memory_bytes"`
		Fits     bool  `json:"fits"`
	}
	code, stdout, stderr := runCLI(t, "estimate", "--model", "../../zero/testdata/mistral7b_config.json", "--lora",
		"--seq", "2048", "--gradient_checkpointing", "--gpu_memory", "24GiB", "--json")
	require.Equal(t, 0, code, stderr)
	require.NoError(t, json.Unmarshal([]byte(lastLine(stdout)), &got))
	assert.True(t, got.Fits)
	assert.Equal(t, int64(24<<30), got.Capacity)
	assert.Contains(t, stdout, "fits in 24.0 GiB")
	code, stdout, stderr = runCLI(t, "estimate", "--model", "../../zero/testdata/mistral7b_config.json",
		"--seq", "2048", "--gradient_checkpointing", "--gpu_memory", "24GiB")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "does not fit in 24.0 GiB")
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"24GiB": 24 << 30, "80GB": 80e9, "24G": 24 << 30, "1.5 TiB": 3 << 39, "512": 512} {
		got, err := parseBytes(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "lots", "-1GiB", "24 GiBs"} {
		_, err := parseBytes(bad)
		assert.Error(t, err, bad)
	}
}

func TestEstimateBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"estimate", "--model", "../../zero/testdata/mistral7b_config.json", "--zero_stage", "4"},
		{"estimate", "--model", "../../zero/testdata/mistral7b_config.json", "--num_devices", "0"},
		{"estimate"},
		{"estimate", "--model", "../../zero/testdata/mistral7b_config.json", "--gpu_memory", "lots"},
		{"estimate", "--model", "../../zero/testdata/mistral7b_config.json", "--dtype", "float16"},
	} {
		code, _, stderr := runCLI(t, args...)
		assert.Equal(t, 1, code, args)
		assert.Contains(t, stderr, "handbook estimate:")
	}
}
