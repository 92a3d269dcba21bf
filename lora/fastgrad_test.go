package lora

import (
	"path/filepath"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/require"

	"handbook/model"
	"handbook/train"
)

// TestFastGradientsMatchGeneric compares the adapter's hand-written training gradients
// (TrainingDecoder on the Go backend) with GoMLX's generic gradients of the same loss, for a
// float and an NF4 base, on an adapter with non-zero A and B (PEFT's rsLoRA fixture).
func TestFastGradientsMatchGeneric(t *testing.T) {
	be := testBackend(t)
	for _, quantized := range []bool{false, true} {
		m := loadBase(t, be, "llama_gqa")
		if quantized {
			require.NoError(t, QuantizeBase(m, QuantizeOptions{}))
		}
		a, err := Load(m, filepath.Join("testdata", "peft_llama_rslora"))
		require.NoError(t, err)
		names := m.Weights.Names()
		var trainable []int
		for i, n := range names {
			if a.Trainable(n) {
				trainable = append(trainable, i)
			}
		}
		ids := tensors.FromFlatDataAndDimensions([]int32{5, 9, 17, 3, 44, 101, 7, 2, 8, 66, 12, 90, 31, 4, 77, 50}, 2, 8)
		run := func(fast, checkpointing bool) []*tensors.Tensor {
			exec, err := NewExec(be, func(inputs []*Node) []*Node {
				p := model.ParamsFromNodes(names, inputs[:len(names)])
				for n, node := range p {
					if !a.Trainable(n) {
						p[n] = StopGradient(node)
					}
				}
				dec := *m.Decoder
				dec.FastGradients = fast // what train.Engine sets on its training graphs
				dec.GradientCheckpointing = checkpointing
				batch := map[string]*Node{"input_ids": inputs[len(names)], "labels": inputs[len(names)]}
				sum, _, _ := train.CausalLM{}.Loss(a.TrainingDecoder(&dec, 1), p, batch)
				var wrt []*Node
				for _, i := range trainable {
					wrt = append(wrt, inputs[i])
				}
				return append([]*Node{sum}, Gradient(sum, wrt...)...)
			})
			require.NoError(t, err)
			defer exec.Finalize()
			args := make([]any, 0, len(names)+1)
			for _, n := range names {
				args = append(args, m.Weights[n])
			}
			out, err := exec.Exec(append(args, ids)...)
			require.NoError(t, err)
			return out
		}
		generic := run(false, false)
		for _, variant := range [][2]bool{{true, false}, {true, true}} { // fast; training with gradient checkpointing
			fast := run(variant[0], variant[1])
			for i := range generic {
				want, err := tensors.CopyFlatData[float32](generic[i])
				require.NoError(t, err)
				got, err := tensors.CopyFlatData[float32](fast[i])
				require.NoError(t, err)
				what := "loss"
				if i > 0 {
					what = names[trainable[i-1]]
				}
				assertClose(t, want, got, 1e-5, what)
			}
		}
	}
}
