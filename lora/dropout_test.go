package lora

import (
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDropout checks the adapter's dropout: about p of the inputs are zeroed, the rest scaled
// by 1/(1-p), different inputs draw different masks, and evaluation graphs apply none.
func TestDropout(t *testing.T) {
	be := testBackend(t)
	a := &Adapter{Config: Config{Dropout: 0.25}, training: true, seed: 5}
	exec, err := NewExec(be, func(x *Node) *Node { return a.dropout(x) })
	require.NoError(t, err)
	defer exec.Finalize()
	masks := [][]bool{}
	for _, v := range []float32{1, 1.5} {
		in := make([]float32, 4000)
		for i := range in {
			in[i] = v
		}
		out, err := exec.Exec(tensors.FromFlatDataAndDimensions(in, 40, 100))
		require.NoError(t, err)
		vals, err := tensors.CopyFlatData[float32](out[0])
		require.NoError(t, err)
		zeros := 0
		mask := make([]bool, len(vals))
		for i, y := range vals {
			if y == 0 {
				zeros++
				continue
			}
			mask[i] = true
			assert.InDelta(t, v/0.75, y, 1e-6)
		}
		assert.InDelta(t, 0.25, float64(zeros)/float64(len(vals)), 0.03, "dropped fraction")
		masks = append(masks, mask)
	}
	assert.NotEqual(t, masks[0], masks[1], "inputs draw their own masks")

	// A dropout adapter leaves evaluation (the model's decoder) deterministic and unchanged.
	m := loadBase(t, be, "llama_gqa")
	ad, err := Attach(m, Config{R: 2, Alpha: 4, Dropout: 0.5, TargetModules: []string{"q_proj"}}, 1)
	require.NoError(t, err)
	ids := [][]int32{{4, 8, 15, 16, 23, 42}}
	assert.Equal(t, logits(t, m, ids), logits(t, m, ids))
	view, ok := ad.TrainingDecoder(m.Decoder, 3).Linear.(*Adapter)
	require.True(t, ok)
	assert.True(t, view.training, "a training decoder applies dropout")
	assert.False(t, ad.training, "the model's own adapter does not")
	base := ad.BaseDecoder()
	assert.Same(t, base, ad.TrainingDecoder(base, 3), "a decoder without the adapter is left alone")
}

func TestDisabled(t *testing.T) {
	be := testBackend(t)
	m := loadBase(t, be, "llama_gqa")
	_, ok := Disabled(m.Decoder)
	assert.False(t, ok)
	a, err := Attach(m, Config{R: 2, Alpha: 4, TargetModules: []string{"q_proj"}}, 1)
	require.NoError(t, err)
	base, ok := Disabled(m.Decoder)
	require.True(t, ok)
	assert.Nil(t, base.Linear)
	assert.Equal(t, a, m.Decoder.Linear)
	view := a.TrainingDecoder(m.Decoder, 3)
	base, ok = Disabled(view)
	require.True(t, ok)
	assert.Nil(t, base.Linear)
}
