package dpo

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/support/exceptions"

	"handbook/model"
)

// Batch input names beyond the decoder's: the reference's summed completion log-probs of each
// pair ([pairs] float32), present when they were precomputed or supplied by the dataset (TRL's
// column names).
const (
	RefChosenLogps   = "ref_chosen_logps"
	RefRejectedLogps = "ref_rejected_logps"
)

// Objective is DPO as a train.Objective. A batch is TRL's preference layout: "input_ids",
// "attention_mask" and "labels" of 2n rows, prompt+chosen rows first, then prompt+rejected rows
// of the same pairs, labels IgnoreIndex outside the completions. The loss is summed over pairs
// and the count is n; metrics are TRL's, summed over pairs so that the engine's division by the
// pairs of a step gives TRL's per-micro-batch means.
//
// The reference log-probs come from the batch (RefChosenLogps, RefRejectedLogps) when present,
// else from Reference run inside the same graph on the policy's parameters under StopGradient
// (the adapter-disabled base of a LoRA model: no second copy of the weights, no gradient and no
// optimizer state for the reference).
type Objective struct {
	LossConfig
	// Reference is the decoder that scores the reference from the policy's own parameters
	// (for LoRA: the same model with the adapter disabled, i.e. Linear = Dense). Ignored when
	// the batch carries the reference log-probs.
	Reference *model.Decoder
}

// tokenStats are per-row, per-position quantities of one forward pass over [rows, seq].
type tokenStats struct {
	logps   *Node // [rows, seq] log p(next label), 0 where the next label is ignored
	valid   *Node // [rows, seq] float: the next label is a completion token
	logits  *Node // [rows, seq, vocab]
	targets *Node // [rows, seq] next labels (0 where ignored)
	// exps = exp(logits − max), sums its sum over the vocabulary and lse the log-partition: kept
	// so the metrics (entropy) reuse the forward's exponentials instead of another pass.
	exps, sums, lse *Node
}

// completionLogps scores labels under logits: position t predicts labels[t+1]. The gradient
// flows through logps; the target logit is gathered, not picked by a one-hot product.
func completionLogps(logits, labels *Node) tokenStats {
	g := logits.Graph()
	rows, seq, vocab := logits.Shape().Dim(0), logits.Shape().Dim(1), logits.Shape().Dim(2)
	labels = ConvertDType(labels, dtypes.Int32)
	ignore := BroadcastToDims(Scalar(g, dtypes.Int32, model.IgnoreIndex), rows, 1)
	target := Concatenate([]*Node{SliceAxis(labels, 1, AxisRangeToEnd(1)), ignore}, 1)
	valid := NotEqual(target, Scalar(g, dtypes.Int32, model.IgnoreIndex))
	safe := Where(valid, target, ZerosLike(target))
	validF := ConvertDType(valid, logits.DType())
	mx := StopGradient(ReduceMax(logits, -1))
	exps := Exp(Sub(logits, InsertAxes(mx, -1)))
	sums := ReduceSum(exps, -1)
	lse := Add(Log(sums), mx)
	n := rows * seq
	idx := Concatenate([]*Node{Iota(g, shapes.Make(dtypes.Int32, n, 1), 0), Reshape(safe, n, 1)}, 1)
	picked := Reshape(Gather(Reshape(logits, n, vocab), idx), rows, seq)
	return tokenStats{logps: Mul(Sub(picked, lse), validF), valid: validF, logits: logits, targets: safe, exps: exps, sums: sums, lse: lse}
}

// halves splits [2n, …] into its chosen and rejected halves.
func halves(x *Node) (chosen, rejected *Node) {
	n := x.Shape().Dim(0) / 2
	return SliceAxis(x, 0, AxisRange(0, n)), SliceAxis(x, 0, AxisRange(n, 2*n))
}

// ReferenceLogps scores the batch with dec on params under StopGradient: summed completion
// log-probs of every row [2n].
func ReferenceLogps(dec *model.Decoder, p model.Params, batch map[string]*Node) *Node {
	frozen := make(model.Params, len(p))
	for k, v := range p {
		frozen[k] = StopGradient(v)
	}
	ref := *dec
	ref.FastGradients = false
	logits := ref.Logits(frozen, model.Batch{InputIDs: batch["input_ids"], AttentionMask: batch["attention_mask"]})
	return StopGradient(ReduceSum(completionLogps(logits, batch["labels"]).logps, 1))
}

// Loss implements train.Objective.
func (o Objective) Loss(dec *model.Decoder, p model.Params, batch map[string]*Node) (sum, count *Node, metrics map[string]*Node) {
	logits, aux := dec.LogitsAndAuxLoss(p, model.Batch{InputIDs: batch["input_ids"], AttentionMask: batch["attention_mask"]})
	st := completionLogps(logits, batch["labels"])
	g := logits.Graph()
	dt := logits.DType()
	rows := logits.Shape().Dim(0)
	n := rows / 2
	nF := Scalar(g, dt, float64(n))

	seqLogps := ReduceSum(st.logps, 1)
	chosen, rejected := halves(seqLogps)
	var refChosen, refRejected *Node
	if rc, ok := batch[RefChosenLogps]; ok {
		refChosen, refRejected = ConvertDType(rc, dt), ConvertDType(batch[RefRejectedLogps], dt)
	} else {
		if o.Reference == nil {
			exceptions.Panicf("dpo: the batch has no %s/%s and the objective no Reference decoder", RefChosenLogps, RefRejectedLogps)
		}
		refChosen, refRejected = halves(ReferenceLogps(o.Reference, p, batch))
	}
	// Completion lengths count completion_mask (labels not ignored, unshifted), as TRL's IPO does.
	completion := ConvertDType(NotEqual(ConvertDType(batch["labels"], dtypes.Int32), Scalar(g, dtypes.Int32, model.IgnoreIndex)), dt)
	chosenLen, rejectedLen := halves(ReduceSum(completion, 1))
	chosenValid, rejectedValid := halves(st.valid)
	chosenTokens, rejectedTokens := ReduceAllSum(chosenValid), ReduceAllSum(rejectedValid)
	chosenTokLogps, _ := halves(st.logps)
	scores := pairScores{chosen: chosen, rejected: rejected, refChosen: refChosen, refRejected: refRejected,
		chosenLen: chosenLen, rejectedLen: rejectedLen,
		sftNLL: Div(Neg(ReduceAllSum(chosenTokLogps)), MaxScalar(chosenTokens, 1))}

	sum = ScalarZero(g, dt)
	for i, lt := range o.lossTypes() {
		sum = Add(sum, MulScalar(ReduceAllSum(o.lossTerm(lt, scores)), o.weights()[i]))
	}

	// Metrics: the reward ones per pair; the token ones are per-micro-batch token averages,
	// times n so the engine's division by pairs returns them.
	x := StopGradient(logits)
	chosenRewards := MulScalar(Sub(StopGradient(chosen), refChosen), o.Beta)
	rejectedRewards := MulScalar(Sub(StopGradient(rejected), refRejected), o.Beta)
	meanLogits := ReduceMean(x, -1)
	chosenMean, rejectedMean := halves(Mul(meanLogits, st.valid))
	// H = lse − Σ p·x with p = exps / sums.
	expected := Div(ReduceSum(Mul(StopGradient(st.exps), x), -1), StopGradient(st.sums))
	entropy := Mul(Sub(StopGradient(st.lse), expected), st.valid)
	top1 := ConvertDType(Equal(ArgMax(x, -1, dtypes.Int32), st.targets), dt)
	chosenTop1, _ := halves(Mul(top1, st.valid))
	perToken := func(total, tokens *Node) *Node { return Mul(nF, Div(total, MaxScalar(tokens, 1))) }
	metrics = map[string]*Node{
		"rewards/chosen":      ReduceAllSum(chosenRewards),
		"rewards/rejected":    ReduceAllSum(rejectedRewards),
		"rewards/accuracies":  ReduceAllSum(ConvertDType(GreaterThan(chosenRewards, rejectedRewards), dt)),
		"rewards/margins":     ReduceAllSum(Sub(chosenRewards, rejectedRewards)),
		"logps/chosen":        ReduceAllSum(StopGradient(chosen)),
		"logps/rejected":      ReduceAllSum(StopGradient(rejected)),
		"logits/chosen":       perToken(ReduceAllSum(chosenMean), chosenTokens),
		"logits/rejected":     perToken(ReduceAllSum(rejectedMean), rejectedTokens),
		"entropy":             perToken(ReduceAllSum(entropy), Add(chosenTokens, rejectedTokens)),
		"mean_token_accuracy": perToken(ReduceAllSum(chosenTop1), chosenTokens),
	}
	return dec.AddAuxLoss(aux, sum, nF, metrics), nF, metrics
}
