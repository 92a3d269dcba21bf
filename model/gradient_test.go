package model

import (
	"fmt"
	"path/filepath"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGradientsMatchTorch compares d(loss)/d(weight) for every weight with torch autograd's,
// recorded by tools/oracle/make_models.py in grads.safetensors, with and without gradient
// checkpointing (Mixtral's, with its router loss, are in TestMixtralTrainingLossMatchesTransformers).
func TestGradientsMatchTorch(t *testing.T) {
	for _, fixture := range []string{"llama_gqa", "starcoder2_bias", "smollm3_nope"} {
		for _, checkpointing := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/checkpointing=%v", fixture, checkpointing), func(t *testing.T) {
				gradientsMatchTorch(t, fixture, checkpointing)
			})
		}
	}
}

func gradientsMatchTorch(t *testing.T, fixture string, checkpointing bool) {
	b := testBackend(t)
	dir := filepath.Join(fixtureDir, fixture)
	m, err := Load(b, dir, LoadOptions{})
	require.NoError(t, err)
	m.Decoder.GradientCheckpointing = checkpointing
	ref := loadReference(t, fixture)
	in, err := Inputs{IDs: ref.InputIDs}.tensors()
	require.NoError(t, err)
	names, args := m.paramArgs()
	n := len(names)
	exec, err := NewExec(b, func(inputs []*Node) []*Node {
		p := ParamsFromNodes(names, inputs[:n])
		logits := m.Decoder.Logits(p, Batch{InputIDs: inputs[n]})
		sum, count := CausalLMLoss(logits, inputs[n])
		loss := Div(sum, count)
		return append([]*Node{loss}, Gradient(loss, inputs[:n]...)...)
	})
	require.NoError(t, err)
	defer exec.Finalize()
	out, err := exec.Exec(append(args, in[0])...)
	require.NoError(t, err)
	assert.InDelta(t, ref.GradLoss, tensors.ToScalar[float32](out[0]), 1e-5)
	assertGradientsMatch(t, filepath.Join(dir, "grads.safetensors"), names, out[1:], fixture)
}
