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

// lossAndGrads returns the mean causal-LM loss and d(loss)/d(weight) for every weight (in
// m.Weights.Names order), with or without the hand-written gradients.
func lossAndGrads(t *testing.T, m *Model, in Inputs, fast bool) (float32, [][]float32) {
	t.Helper()
	dec := *m.Decoder
	dec.FastGradients = fast
	ts, err := in.tensors()
	require.NoError(t, err)
	names, args := m.paramArgs()
	n := len(names)
	exec, err := NewExec(m.Backend(), func(inputs []*Node) []*Node {
		p := ParamsFromNodes(names, inputs[:n])
		b := Batch{InputIDs: inputs[n], PositionIDs: inputs[n+1]}
		if in.AttentionMask != nil {
			b.AttentionMask = inputs[n+2]
		}
		if in.SegmentIDs != nil {
			b.SegmentIDs = inputs[n+3]
		}
		// Labels: the ids, with padding excluded like a data collator does.
		labels := inputs[n]
		if in.AttentionMask != nil {
			labels = Where(Equal(inputs[n+2], ZerosLike(inputs[n+2])), BroadcastToShape(Scalar(labels.Graph(), labels.DType(), IgnoreIndex), labels.Shape()), labels)
		}
		sum, count := CausalLMLoss(dec.Logits(p, b), labels)
		loss := Div(sum, count)
		return append([]*Node{loss}, Gradient(loss, inputs[:n]...)...)
	})
	require.NoError(t, err)
	defer exec.Finalize()
	out, err := exec.Exec(append(args, ts[0], ts[1], ts[2], ts[3])...)
	require.NoError(t, err)
	grads := make([][]float32, n)
	for i := range names {
		grads[i], err = tensors.CopyFlatData[float32](out[i+1])
		require.NoError(t, err)
	}
	return tensors.ToScalar[float32](out[0]), grads
}

// TestFastGradientsMatchTorch is TestGradientsMatchTorch with Decoder.FastGradients (the
// training step's setting): the hand-written gradients must match torch autograd as closely.
func TestFastGradientsMatchTorch(t *testing.T) {
	b := testBackend(t)
	dir := filepath.Join(fixtureDir, "llama_gqa")
	m, err := Load(b, dir, LoadOptions{})
	require.NoError(t, err)
	ref := loadReference(t, "llama_gqa")
	loss, grads := lossAndGrads(t, m, Inputs{IDs: ref.InputIDs}, true)
	assert.InDelta(t, ref.GradLoss, loss, 1e-5)

	want, err := safetensors.Open(filepath.Join(dir, "grads.safetensors"))
	require.NoError(t, err)
	defer want.Close()
	names := m.Weights.Names()
	require.ElementsMatch(t, names, want.Names())
	for i, name := range names {
		wt, err := want.Tensor(name)
		require.NoError(t, err)
		wv, err := wt.Float32s()
		require.NoError(t, err)
		var maxRef, maxDiff float64
		for j := range wv {
			maxRef = math.Max(maxRef, math.Abs(float64(wv[j])))
			maxDiff = math.Max(maxDiff, math.Abs(float64(wv[j]-grads[i][j])))
		}
		assert.LessOrEqual(t, maxDiff, 1e-4*maxRef, "%s: max|Δ| %g, max|grad| %g", name, maxDiff, maxRef)
	}
}

// TestFastGradientsMatchGeneric checks the hand-written gradients against GoMLX's generic ones on
// every fixture family (tied head, biases, qk-norm, sliding window, Gemma) and on padded and
// packed batches (queries with no key to attend to, segment masks).
func TestFastGradientsMatchGeneric(t *testing.T) {
	b := testBackend(t)
	for _, name := range fixtureNames {
		m, err := Load(b, filepath.Join(fixtureDir, name), LoadOptions{})
		require.NoError(t, err)
		ref := loadReference(t, name)
		batches := map[string]Inputs{
			"plain":  {IDs: ref.InputIDs},
			"padded": {IDs: ref.Padded.InputIDs, AttentionMask: ref.Padded.AttentionMask, PositionIDs: ref.Padded.PositionIDs},
			"packed": {IDs: ref.Packed.InputIDs, PositionIDs: ref.Packed.PositionIDs, SegmentIDs: ref.Packed.SegmentIDs},
		}
		for kind, in := range batches {
			wantLoss, want := lossAndGrads(t, m, in, false)
			gotLoss, got := lossAndGrads(t, m, in, true)
			assert.InDelta(t, wantLoss, gotLoss, 1e-5, "%s/%s loss", name, kind)
			for i, w := range m.Weights.Names() {
				var maxRef, maxDiff float64
				for j := range want[i] {
					maxRef = math.Max(maxRef, math.Abs(float64(want[i][j])))
					maxDiff = math.Max(maxDiff, math.Abs(float64(want[i][j]-got[i][j])))
				}
				assert.LessOrEqual(t, maxDiff, 1e-4*maxRef+1e-7, "%s/%s %s: max|Δ| %g, max|grad| %g", name, kind, w, maxDiff, maxRef)
			}
		}
	}
}
