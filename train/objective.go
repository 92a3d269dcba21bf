package train

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified

	"handbook/model"
)

// Objective is what a trainer optimizes. Loss returns, for one micro-batch, the loss summed over
// its units (trainable tokens for SFT, pairs for DPO), the number of units, and metrics summed
// over the same units. The engine divides by the units of all accumulated micro-batches, so
// gradient accumulation weighs every unit equally (the normalization TRL needed, trl#2617).
type Objective interface {
	Loss(dec *model.Decoder, p model.Params, batch map[string]*Node) (sum, count *Node, metrics map[string]*Node)
}

// CausalLM is the supervised objective: next-token cross entropy over tokens whose label is not
// model.IgnoreIndex, with mean_token_accuracy as TRL reports it, plus a mixture-of-experts model's
// router load-balancing loss when its decoder weighs it (Decoder.RouterAuxLossCoef). Batches carry
// "input_ids" and "labels", optionally "attention_mask", "position_ids" and "segment_ids".
type CausalLM struct{}

// Loss implements Objective.
func (CausalLM) Loss(dec *model.Decoder, p model.Params, batch map[string]*Node) (sum, count *Node, metrics map[string]*Node) {
	logits, aux := dec.LogitsAndAuxLoss(p, model.Batch{
		InputIDs: batch["input_ids"], AttentionMask: batch["attention_mask"],
		PositionIDs: batch["position_ids"], SegmentIDs: batch["segment_ids"],
	})
	sum, count = model.CausalLMLoss(logits, batch["labels"])
	seq := logits.Shape().Dim(1)
	pred := ArgMax(SliceAxis(logits, 1, AxisRange(0, seq-1)), -1, batch["labels"].DType())
	target := SliceAxis(batch["labels"], 1, AxisRangeToEnd(1))
	valid := NotEqual(target, Scalar(target.Graph(), target.DType(), model.IgnoreIndex))
	correct := ReduceAllSum(ConvertDType(LogicalAnd(valid, Equal(pred, target)), sum.DType()))
	metrics = map[string]*Node{"mean_token_accuracy": correct}
	return dec.AddAuxLoss(aux, sum, count, metrics), count, metrics
}
