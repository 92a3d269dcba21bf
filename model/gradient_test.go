package model

import (
	"math"
	"path/filepath"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/safetensors"
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

		want, err := safetensors.Open(filepath.Join(dir, "grads.safetensors"))
		require.NoError(t, err)
		require.ElementsMatch(t, names, want.Names())
		for i, name := range names {
			wt, err := want.Tensor(name)
			require.NoError(t, err)
			wv, err := wt.Float32s()
			require.NoError(t, err)
			gv, err := tensors.CopyFlatData[float32](out[i+1])
			require.NoError(t, err)
			var maxRef, maxDiff float64
			for j := range wv {
				maxRef = math.Max(maxRef, math.Abs(float64(wv[j])))
				maxDiff = math.Max(maxDiff, math.Abs(float64(wv[j]-gv[j])))
			}
			assert.LessOrEqual(t, maxDiff, 1e-4*maxRef, "checkpointing=%v %s: max|Δ| %g, max|grad| %g", checkpointing, name, maxDiff, maxRef)
		}
		want.Close()
		exec.Finalize()
	}
}
