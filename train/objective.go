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

// Loss implements Objective. The LM head and the loss run fused in chunks of tokens
// (model.Decoder.CausalLMHeadLoss), so the full [batch, seq, vocab] logits are never held.
func (CausalLM) Loss(dec *model.Decoder, p model.Params, batch map[string]*Node) (sum, count *Node, metrics map[string]*Node) {
	hidden, aux := dec.HiddenAndAuxLoss(p, model.Batch{
		InputIDs: batch["input_ids"], AttentionMask: batch["attention_mask"],
		PositionIDs: batch["position_ids"], SegmentIDs: batch["segment_ids"],
	})
	sum, count, correct := dec.CausalLMHeadLoss(p, hidden, batch["labels"])
	metrics = map[string]*Node{"mean_token_accuracy": ConvertDType(correct, sum.DType())}
	return dec.AddAuxLoss(aux, sum, count, metrics), count, metrics
}
