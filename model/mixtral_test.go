package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/safetensors"
)

// moeReference is the "moe" block tools/oracle/make_models.py records for mixtral_moe.
type moeReference struct {
	Coef        float64 `json:"router_aux_loss_coef"`
	AuxLoss     float64 `json:"aux_loss"`
	LossWithAux float64 `json:"loss_with_aux"`
	TrainBatch  struct {
		InputIDs      [][]int32 `json:"input_ids"`
		AttentionMask [][]int32 `json:"attention_mask"`
		Labels        [][]int32 `json:"labels"`
	} `json:"train_batch"`
	TrainAuxLoss     float64 `json:"train_aux_loss"`
	TrainLossWithAux float64 `json:"train_loss_with_aux"`
}

// TestMixtralTrainingLossMatchesTransformers: the causal-LM loss plus router_aux_loss_coef times
// the load-balancing loss, as MixtralForCausalLM computes it with output_router_logits, on a plain
// batch and on a right-padded one as TRL collates it (padding excluded from the aux term), and
// the gradients of the padded one for every weight (router and experts included), with and
// without gradient checkpointing.
func TestMixtralTrainingLossMatchesTransformers(t *testing.T) {
	dir := filepath.Join(fixtureDir, "mixtral_moe")
	ref := loadReference(t, "mixtral_moe")
	data, err := os.ReadFile(filepath.Join(dir, "reference.json"))
	require.NoError(t, err)
	var moe struct {
		MoE moeReference `json:"moe"`
	}
	require.NoError(t, json.Unmarshal(data, &moe))
	r := moe.MoE
	require.NotZero(t, r.AuxLoss)
	for _, checkpointing := range []bool{false, true} {
		b := testBackend(t)
		m, err := Load(b, dir, LoadOptions{})
		require.NoError(t, err)
		assert.Zero(t, m.Decoder.RouterAuxLossCoef, "output_router_logits is false in config.json")
		m.Decoder.RouterAuxLossCoef = r.Coef
		m.Decoder.GradientCheckpointing = checkpointing
		names, args := m.paramArgs()
		n := len(names)
		exec, err := NewExec(b, func(inputs []*Node) []*Node {
			p := ParamsFromNodes(names, inputs[:n])
			ids, pos, mask, labels := inputs[n], inputs[n+1], inputs[n+2], inputs[n+3]
			logits, aux := m.Decoder.LogitsAndAuxLoss(p, Batch{InputIDs: ids, PositionIDs: pos, AttentionMask: mask})
			sum, count := CausalLMLoss(logits, labels)
			loss := Add(Div(sum, count), MulScalar(aux, m.Decoder.RouterAuxLossCoef))
			return append([]*Node{loss, aux}, Gradient(loss, inputs[:n]...)...)
		})
		require.NoError(t, err)
		run := func(in Inputs, labels [][]int32) []*tensors.Tensor {
			ts, err := in.tensors()
			require.NoError(t, err)
			lab, err := Inputs{IDs: labels}.tensors()
			require.NoError(t, err)
			out, err := exec.Exec(append(append(args[:n:n], ts[0], ts[1], ts[2]), lab[0])...)
			require.NoError(t, err)
			return out
		}
		out := run(Inputs{IDs: ref.InputIDs}, ref.InputIDs)
		assert.InDelta(t, r.LossWithAux, tensors.ToScalar[float32](out[0]), 1e-5)
		assert.InDelta(t, r.AuxLoss, tensors.ToScalar[float32](out[1]), 1e-5)

		tb := r.TrainBatch
		out = run(Inputs{IDs: tb.InputIDs, AttentionMask: tb.AttentionMask}, tb.Labels)
		assert.InDelta(t, r.TrainLossWithAux, tensors.ToScalar[float32](out[0]), 1e-5)
		assert.InDelta(t, r.TrainAuxLoss, tensors.ToScalar[float32](out[1]), 1e-5)
		assertGradientsMatch(t, filepath.Join(dir, "grads.safetensors"), names, out[2:], "mixtral_moe")
		exec.Finalize()
	}
}

// assertGradientsMatch compares gradients by weight name with a grads.safetensors fixture:
// max|Δ| ≤ 1e-4·max|grad| per weight.
func assertGradientsMatch(t *testing.T, path string, names []string, got []*tensors.Tensor, what string) {
	t.Helper()
	want, err := safetensors.Open(path)
	require.NoError(t, err)
	defer want.Close()
	require.ElementsMatch(t, names, want.Names())
	for i, name := range names {
		wt, err := want.Tensor(name)
		require.NoError(t, err)
		wv, err := wt.Float32s()
		require.NoError(t, err)
		gv, err := tensors.CopyFlatData[float32](got[i])
		require.NoError(t, err)
		var maxRef, maxDiff float64
		for j := range wv {
			maxRef = math.Max(maxRef, math.Abs(float64(wv[j])))
			maxDiff = math.Max(maxDiff, math.Abs(float64(wv[j]-gv[j])))
		}
		assert.LessOrEqual(t, maxDiff, 1e-4*maxRef, "%s %s: max|Δ| %g, max|grad| %g", what, name, maxDiff, maxRef)
	}
}
