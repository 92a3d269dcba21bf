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

// TestAdamWMatchesTorch replays torch.optim.AdamW's trajectory (tools/oracle/adamw_golden.py).
func TestAdamWMatchesTorch(t *testing.T) {
	data, err := os.ReadFile("testdata/adamw.json")
	require.NoError(t, err)
	var golden struct {
		Param []float32   `json:"param"`
		Grads [][]float32 `json:"grads"`
		Cases []struct {
			LR            float64     `json:"lr"`
			WeightDecay   float64     `json:"weight_decay"`
			Beta1         float64     `json:"beta1"`
			Beta2         float64     `json:"beta2"`
			Eps           float64     `json:"eps"`
			AfterEachStep [][]float32 `json:"after_each_step"`
		} `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(data, &golden))
	b, _, err := backend.New()
	require.NoError(t, err)
	defer b.Finalize()
	for _, c := range golden.Cases {
		opt := AdamW{Beta1: c.Beta1, Beta2: c.Beta2, Epsilon: c.Eps, WeightDecay: c.WeightDecay}
		exec, err := NewExec(b, func(p, g, m, v, step, lr *Node) []*Node {
			np, nm, nv := opt.Update(p, g, m, v, step, lr, true)
			return []*Node{np, nm, nv}
		})
		require.NoError(t, err)
		n := len(golden.Param)
		p := tensors.FromValue(golden.Param)
		m, v := tensors.FromValue(make([]float32, n)), tensors.FromValue(make([]float32, n))
		for i, g := range golden.Grads {
			out, err := exec.Exec(p, tensors.FromValue(g), m, v, tensors.FromScalar(float32(i+1)), tensors.FromScalar(float32(c.LR)))
			require.NoError(t, err)
			p, m, v = out[0], out[1], out[2]
			got, err := tensors.CopyFlatData[float32](p)
			require.NoError(t, err)
			assert.InDeltaSlice(t, c.AfterEachStep[i], got, 1e-6, "lr=%g wd=%g step %d", c.LR, c.WeightDecay, i+1)
		}
		exec.Finalize()
	}
}
