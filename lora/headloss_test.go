package lora

import (
	"fmt"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/model"
)

// TestFusedHeadLossThroughAdapter checks that an adapter which leaves lm_head alone lets the
// fused head loss reach its weight (model.PlainLinear), on a plain, a QLoRA and a
// modules_to_save base, and that loss and adapter gradients match the unfused head; an adapter
// on lm_head itself keeps the unfused head.
func TestFusedHeadLossThroughAdapter(t *testing.T) {
	cases := []struct {
		name     string
		cfg      Config
		quantize bool
		fused    bool
	}{
		{"lora", Config{R: 4, Alpha: 8, TargetModules: []string{AllLinear}}, false, true},
		{"qlora", Config{R: 4, Alpha: 8, TargetModules: []string{AllLinear}}, true, true},
		{"modules_to_save", Config{R: 4, Alpha: 8, TargetModules: []string{AllLinear}, ModulesToSave: []string{"lm_head"}}, false, true},
		{"adapted head", Config{R: 4, Alpha: 8, TargetModules: []string{"q_proj", "lm_head"}}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := loadBase(t, testBackend(t), "llama_gqa")
			if tc.quantize {
				require.NoError(t, QuantizeBase(m, QuantizeOptions{DoubleQuant: true}))
			}
			a, err := Attach(m, tc.cfg, 1)
			require.NoError(t, err)
			// B starts at zero; random values make every adapter gradient non-trivial.
			rng := rand.New(rand.NewPCG(5, 6))
			for _, mod := range a.Modules {
				b := m.Weights[loraB(mod)]
				vals := make([]float32, b.Shape().Size())
				for i := range vals {
					vals[i] = float32(rng.NormFloat64() * 0.05)
				}
				m.Weights[loraB(mod)] = tensors.FromFlatDataAndDimensions(vals, b.Shape().Dimensions...)
			}
			fast := *m.Decoder
			fast.FastGradients = true
			dec := a.TrainingDecoder(&fast, 1)
			const batch, seq = 2, 7
			ids := make([]int32, batch*seq)
			for i := range ids {
				ids[i] = int32(rng.IntN(m.Config.VocabSize))
			}
			names := m.Weights.Names()
			run := func(fused bool) []*tensors.Tensor {
				exec, err := NewExec(m.Backend(), func(inputs []*Node) []*Node {
					p := model.ParamsFromNodes(names, inputs[:len(names)])
					var trainable []*Node
					for _, n := range names {
						if a.Trainable(n) {
							trainable = append(trainable, p[n])
						} else {
							p[n] = StopGradient(p[n])
						}
					}
					assert.Equal(t, tc.fused, model.PlainWeightOf(dec.Linear, p, "lm_head") != nil, "fused path")
					ids := inputs[len(names)]
					hidden := dec.Hidden(p, model.Batch{InputIDs: ids})
					var sum *Node
					if fused {
						sum, _, _ = dec.CausalLMHeadLoss(p, hidden, ids)
					} else {
						sum, _ = model.CausalLMLoss(dec.Head(p, hidden), ids)
					}
					return append([]*Node{sum}, Gradient(sum, trainable...)...)
				})
				require.NoError(t, err)
				defer exec.Finalize()
				args := make([]any, 0, len(names)+1)
				for _, n := range names {
					args = append(args, m.Weights[n])
				}
				out, err := exec.Exec(append(args, tensors.FromFlatDataAndDimensions(ids, batch, seq))...)
				require.NoError(t, err)
				return out
			}
			want, got := run(false), run(true)
			require.Len(t, got, len(want))
			for i := range want {
				wv, err := tensors.CopyFlatData[float32](want[i])
				require.NoError(t, err)
				gv, err := tensors.CopyFlatData[float32](got[i])
				require.NoError(t, err)
				assertClose(t, wv, gv, 1e-5, fmt.Sprintf("output %d (loss, then gradients)", i))
			}
		})
	}
}
