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
// recorded by tools/oracle/make_models.py in grads.safetensors.
func TestGradientsMatchTorch(t *testing.T) {
	for _, checkpointing := range []bool{false, true} {
		b := testBackend(t)
		dir := filepath.Join(fixtureDir, "llama_gqa")
		m, err := Load(b, dir, LoadOptions{})
		require.NoError(t, err)
		m.Decoder.GradientCheckpointing = checkpointing
		ref := loadReference(t, "llama_gqa")
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
		out, err := exec.Exec(append(args, in[0])...)
		require.NoError(t, err)
		assert.InDelta(t, ref.GradLoss, tensors.ToScalar[float32](out[0]), 1e-5)

		assertGradientsMatch(t, filepath.Join(dir, "grads.safetensors"), names, out[1:], fmt.Sprintf("checkpointing=%v", checkpointing))
		exec.Finalize()
	}
}
