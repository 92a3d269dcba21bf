package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEstimateMistral7B: the ZeRO paper's stage-3 model states, (2+2+12)Ψ/N, for Mistral-7B on 8
// devices, with Ψ from the architecture's closed form.
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
	assert.InEpsilon(t, 16*psi/8, float64(got.ModelStates), 0.01)
	assert.InEpsilon(t, 2*psi/8, float64(got.Parameters), 0.01)
	assert.InEpsilon(t, 12*psi/8, float64(got.Optimizer), 0.01)
	assert.Zero(t, got.Activations)
}

func TestEstimateBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"estimate", "--model", "../../zero/testdata/mistral7b_config.json", "--zero_stage", "4"},
		{"estimate", "--model", "../../zero/testdata/mistral7b_config.json", "--num_devices", "0"},
		{"estimate"},
	} {
		code, _, stderr := runCLI(t, args...)
		assert.Equal(t, 1, code, args)
		assert.Contains(t, stderr, "handbook estimate:")
	}
}
