package dpo

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified

	"handbook/model"
)

// ORPO is the odds-ratio preference objective of TRL 1.16's ORPOTrainer (trl.experimental.orpo),
// with λ = Beta and no reference model. On the same preference batch layout as Objective:
//
//	loss = NLL(chosen rows, every attended token, prompt included) − β·mean log σ(log_odds)
//	log_odds = (ℓ_c − ℓ_r) − (log(1 − e^ℓ_c) − log(1 − e^ℓ_r))
//
// where ℓ are per-token average completion log-probs. Metrics are ORPOTrainer's: rewards/*
// (β·ℓ), logps/* (ℓ), logits/* (the mean of the [:, :-1] logits over all positions and the
// vocabulary, padding included, as TRL averages them), nll_loss, log_odds_ratio (mean log σ) and
// log_odds_chosen (mean log_odds).
type ORPO struct {
	// Beta is λ, the weight of the odds-ratio term (TRL default 0.1).
	Beta float64
}

// Loss implements train.Objective.
func (o ORPO) Loss(dec *model.Decoder, p model.Params, batch map[string]*Node) (sum, count *Node, metrics map[string]*Node) {
	ids, mask := batch["input_ids"], batch["attention_mask"]
	logits, aux := dec.LogitsAndAuxLoss(p, model.Batch{InputIDs: ids, AttentionMask: mask})
	g := logits.Graph()
	dt := logits.DType()
	rows, seq := logits.Shape().Dim(0), logits.Shape().Dim(1)
	n := rows / 2
	nF := Scalar(g, dt, float64(n))

	st := completionLogps(logits, batch["labels"])
	avg := Div(ReduceSum(st.logps, 1), MaxScalar(ReduceSum(st.valid, 1), 1))
	chosen, rejected := halves(avg)

	// The NLL term trains on every attended token of the chosen rows, prompt included.
	ids32 := ConvertDType(ids, dtypes.Int32)
	nllLabels := ids32
	if mask != nil {
		nllLabels = Where(NotEqual(ConvertDType(mask, dtypes.Int32), ZerosLike(ids32)), ids32,
			BroadcastToShape(Scalar(g, dtypes.Int32, model.IgnoreIndex), ids32.Shape()))
	}
	chosenLogits, rejectedLogits := halves(logits)
	chosenNLLLabels, _ := halves(nllLabels)
	nllSum, nllCount := model.CausalLMLoss(chosenLogits, chosenNLLLabels)
	nll := Div(nllSum, MaxScalar(nllCount, 1))

	logOdds := Sub(Sub(chosen, rejected), Sub(log1mexp(chosen), log1mexp(rejected)))
	ratio := logSigmoid(logOdds)
	sum = Sub(Mul(nF, nll), MulScalar(ReduceAllSum(ratio), o.Beta))

	c, r := StopGradient(chosen), StopGradient(rejected)
	chosenRewards, rejectedRewards := MulScalar(c, o.Beta), MulScalar(r, o.Beta)
	logitsMean := func(x *Node) *Node {
		// TRL averages logits[:, :-1, :] (every position but the last).
		x = SliceAxis(StopGradient(x), 1, AxisRange(0, seq-1))
		return Mul(nF, ReduceAllMean(x))
	}
	metrics = map[string]*Node{
		"rewards/chosen":     ReduceAllSum(chosenRewards),
		"rewards/rejected":   ReduceAllSum(rejectedRewards),
		"rewards/accuracies": ReduceAllSum(ConvertDType(GreaterThan(chosenRewards, rejectedRewards), dt)),
		"rewards/margins":    ReduceAllSum(Sub(chosenRewards, rejectedRewards)),
		"logps/chosen":       ReduceAllSum(c),
		"logps/rejected":     ReduceAllSum(r),
		"logits/chosen":      logitsMean(chosenLogits),
		"logits/rejected":    logitsMean(rejectedLogits),
		"nll_loss":           Mul(nF, StopGradient(nll)),
		"log_odds_ratio":     ReduceAllSum(StopGradient(ratio)),
		"log_odds_chosen":    ReduceAllSum(StopGradient(logOdds)),
	}
	return dec.AddAuxLoss(aux, sum, nF, metrics), nF, metrics
}

// log1mexp is log(1 − eˣ) for x < 0, switching formulas at −ln 2 to avoid cancellation (TRL's).
// GoMLX has no gradient for Expm1, so the value is built without one and the exact derivative
// eˣ / expm1(x) is attached through x − StopGradient(x), which is zero in value.
func log1mexp(x *Node) *Node {
	xs := StopGradient(x)
	value := Where(LessThan(xs, Scalar(x.Graph(), x.DType(), -math.Ln2)), Log1p(Neg(Exp(xs))), Log(Neg(Expm1(xs))))
	slope := Div(Exp(xs), Expm1(xs))
	return Add(value, Mul(slope, Sub(x, xs)))
}
