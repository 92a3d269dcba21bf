package train

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/model"
)

// fixedBatches serves the same host batches every epoch.
type fixedBatches []map[string]*tensors.Tensor

func (f fixedBatches) Len() int { return len(f) }

func (f fixedBatches) Batch(_, i int) (map[string]*tensors.Tensor, error) { return f[i], nil }

// TestCausalLMAddsRouterAuxLoss: on a mixture-of-experts model whose decoder weighs the router
// loss, CausalLM's loss is transformers' MixtralForCausalLM loss with output_router_logits (the
// causal-LM loss plus router_aux_loss_coef times the load-balancing loss) on the same right-padded
// batch, and aux_loss is reported; with the coefficient at zero the term is gone.
func TestCausalLMAddsRouterAuxLoss(t *testing.T) {
	const dir = "../testdata/models/mixtral_moe"
	data, err := os.ReadFile(dir + "/reference.json")
	require.NoError(t, err)
	var ref struct {
		MoE struct {
			Coef       float64 `json:"router_aux_loss_coef"`
			TrainBatch struct {
				InputIDs      [][]int32 `json:"input_ids"`
				AttentionMask [][]int32 `json:"attention_mask"`
				Labels        [][]int32 `json:"labels"`
			} `json:"train_batch"`
			TrainAux  float64 `json:"train_aux_loss"`
			TrainLoss float64 `json:"train_loss_with_aux"`
		} `json:"moe"`
	}
	require.NoError(t, json.Unmarshal(data, &ref))
	b, _, err := backend.New()
	require.NoError(t, err)
	m, err := model.Load(b, dir, model.LoadOptions{})
	require.NoError(t, err)
	defer m.Finalize()
	tb := ref.MoE.TrainBatch
	flat := func(rows [][]int32) *tensors.Tensor {
		var v []int32
		for _, r := range rows {
			v = append(v, r...)
		}
		return tensors.FromFlatDataAndDimensions(v, len(rows), len(rows[0]))
	}
	batch := fixedBatches{{"input_ids": flat(tb.InputIDs), "attention_mask": flat(tb.AttentionMask), "labels": flat(tb.Labels)}}

	m.Decoder.RouterAuxLossCoef = ref.MoE.Coef
	e := &Engine{Model: m, Objective: CausalLM{}}
	got, err := e.Evaluate(context.Background(), batch)
	require.NoError(t, err)
	assert.InDelta(t, ref.MoE.TrainLoss, got["loss"], 1e-5)
	assert.InDelta(t, ref.MoE.TrainAux, got["aux_loss"], 1e-5)

	m.Decoder.RouterAuxLossCoef = 0
	e = &Engine{Model: m, Objective: CausalLM{}}
	got, err = e.Evaluate(context.Background(), batch)
	require.NoError(t, err)
	assert.InDelta(t, ref.MoE.TrainLoss-ref.MoE.Coef*ref.MoE.TrainAux, got["loss"], 1e-5)
	assert.NotContains(t, got, "aux_loss")
}
