package dpo

import (
	"math"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
)

// perPairLoss evaluates one loss type on host vectors: the policy's summed log-probs, the
// reference's, and the completion lengths.
func perPairLoss(t *testing.T, c LossConfig, lt LossType, chosen, rejected, refChosen, refRejected, chosenLen, rejectedLen []float32) []float32 {
	t.Helper()
	b, _, err := backend.New()
	require.NoError(t, err)
	exec, err := NewExec(b, func(in []*Node) *Node {
		return c.lossTerm(lt, pairScores{chosen: in[0], rejected: in[1], refChosen: in[2], refRejected: in[3],
			chosenLen: in[4], rejectedLen: in[5], sftNLL: ScalarZero(in[0].Graph(), dtypes.Float32)})
	})
	require.NoError(t, err)
	defer exec.Finalize()
	var args []any
	for _, v := range [][]float32{chosen, rejected, refChosen, refRejected, chosenLen, rejectedLen} {
		args = append(args, tensors.FromFlatDataAndDimensions(v, len(v)))
	}
	out, err := exec.Exec(args...)
	require.NoError(t, err)
	vals, err := tensors.CopyFlatData[float32](out[0])
	require.NoError(t, err)
	return vals
}

// TestClosedFormLosses checks the closed-form vectors: β = 0.1 and
// Δ = (π_c − ref_c) − (π_r − ref_r) = [0, 10, 20] of summed log-probs.
func TestClosedFormLosses(t *testing.T) {
	zeros := []float32{0, 0, 0}
	ones := []float32{1, 1, 1}
	delta := []float32{0, 10, 20}
	for _, tc := range []struct {
		lt   LossType
		eps  float64
		want []float64
	}{
		{LossSigmoid, 0, []float64{0.693147, 0.313262, 0.126928}},
		{LossHinge, 0, []float64{1, 0, 0}},
		{LossRobust, 0.1, []float64{0.693147, 0.188262, -0.123072}},
	} {
		t.Run(string(tc.lt), func(t *testing.T) {
			got := perPairLoss(t, LossConfig{Beta: 0.1, LabelSmoothing: tc.eps}, tc.lt, delta, zeros, zeros, zeros, ones, ones)
			for i := range tc.want {
				assert.InDelta(t, tc.want[i], got[i], 5e-6, "Δ=%v", delta[i])
			}
		})
	}
	t.Run("ipo per-token average", func(t *testing.T) {
		// Summed log-ratios 6 over 3 tokens and 4 over 2 tokens: both average 2, so Δ_avg = 0 and
		// the loss is (0 − 1/(2β))² = 25, although the summed Δ is 2.
		got := perPairLoss(t, LossConfig{Beta: 0.1}, LossIPO, []float32{6}, []float32{4}, []float32{0}, []float32{0}, []float32{3}, []float32{2})
		assert.InDelta(t, 25, got[0], 1e-5)
	})
	t.Run("aot sorts across the batch", func(t *testing.T) {
		// Policy margins [3, −1] sort to [−1, 3]; reference margins [0, 2] stay: Δ = [−1, 1].
		got := perPairLoss(t, LossConfig{Beta: 1}, LossAOT, []float32{3, -1}, []float32{0, 0}, []float32{0, 2}, []float32{0, 0}, ones[:2], ones[:2])
		assert.InDelta(t, math.Log1p(math.E), got[0], 1e-5)
		assert.InDelta(t, math.Log1p(1/math.E), got[1], 1e-5)
	})
}

func TestLossConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  LossConfig
		want string
	}{
		{"unknown loss type", LossConfig{Beta: 0.1, LossType: []LossType{"dpo"}}, "unknown loss_type \"dpo\"; valid: sigmoid, hinge, ipo,"},
		{"weights length", LossConfig{Beta: 0.1, LossType: []LossType{LossSigmoid, LossSFT}, LossWeights: []float64{1}}, "loss_weights has 1 values for 2 loss types"},
		{"default type with two weights", LossConfig{Beta: 0.1, LossWeights: []float64{1, 2}}, "loss_weights has 2 values for 1 loss types"},
		{"zero beta", LossConfig{Beta: 0}, "beta must be positive"},
		{"negative beta", LossConfig{Beta: -0.1}, "beta must be positive"},
		{"NaN beta", LossConfig{Beta: math.NaN()}, "beta must be positive"},
		{"exo without smoothing", LossConfig{Beta: 0.1, LossType: []LossType{LossExoPair}}, "label_smoothing > 0"},
		{"robust smoothing 0.5", LossConfig{Beta: 0.1, LossType: []LossType{LossRobust}, LabelSmoothing: 0.5}, "[0, 0.5)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.ErrorContains(t, tc.cfg.Validate(), tc.want)
		})
	}
	assert.NoError(t, DefaultLossConfig().Validate())
	lts, err := ParseLossTypes("sigmoid", " sft")
	require.NoError(t, err)
	assert.Equal(t, []LossType{LossSigmoid, LossSFT}, lts)
	_, err = ParseLossTypes("kto")
	assert.ErrorContains(t, err, "valid: sigmoid, hinge")
}
