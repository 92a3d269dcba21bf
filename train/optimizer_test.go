package train

import (
	"encoding/json"
	"os"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
)

// TestOptimizersMatchTorch replays the trajectories of torch.optim.AdamW, RMSprop and SGD
// (tools/oracle/optimizer_golden.py).
func TestOptimizersMatchTorch(t *testing.T) {
	data, err := os.ReadFile("testdata/optimizers.json")
	require.NoError(t, err)
	var golden struct {
		Param []float32   `json:"param"`
		Grads [][]float32 `json:"grads"`
		Cases []struct {
			Optim         string      `json:"optim"`
			LR            float64     `json:"lr"`
			WeightDecay   float64     `json:"weight_decay"`
			Beta1         float64     `json:"beta1"`
			Beta2         float64     `json:"beta2"`
			Alpha         float64     `json:"alpha"`
			Eps           float64     `json:"eps"`
			AfterEachStep [][]float32 `json:"after_each_step"`
		} `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(data, &golden))
	b, _, err := backend.New()
	require.NoError(t, err)
	defer b.Finalize()
	for _, c := range golden.Cases {
		opt := map[string]Optimizer{
			"adamw":   AdamW{Beta1: c.Beta1, Beta2: c.Beta2, Epsilon: c.Eps, WeightDecay: c.WeightDecay},
			"rmsprop": RMSprop{Alpha: c.Alpha, Epsilon: c.Eps, WeightDecay: c.WeightDecay},
			"sgd":     SGD{WeightDecay: c.WeightDecay},
		}[c.Optim]
		require.NotNil(t, opt, c.Optim)
		ns := len(opt.StateNames())
		exec, err := NewExec(b, func(inputs []*Node) []*Node {
			p, g, step, lr, state := inputs[0], inputs[1], inputs[2], inputs[3], inputs[4:]
			np, ns := opt.Update(p, g, state, step, lr, true)
			return append([]*Node{np}, ns...)
		})
		require.NoError(t, err)
		n := len(golden.Param)
		p := tensors.FromValue(golden.Param)
		state := make([]*tensors.Tensor, ns)
		for i := range state {
			state[i] = tensors.FromValue(make([]float32, n))
		}
		for i, g := range golden.Grads {
			args := []any{p, tensors.FromValue(g), tensors.FromScalar(float32(i + 1)), tensors.FromScalar(float32(c.LR))}
			for _, s := range state {
				args = append(args, s)
			}
			out, err := exec.Exec(args...)
			require.NoError(t, err)
			p, state = out[0], out[1:]
			got, err := tensors.CopyFlatData[float32](p)
			require.NoError(t, err)
			assert.InDeltaSlice(t, c.AfterEachStep[i], got, 1e-6, "%s lr=%g wd=%g step %d", c.Optim, c.LR, c.WeightDecay, i+1)
		}
		exec.Finalize()
	}
}
