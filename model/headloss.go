package model

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
)

// The LM head and the causal-LM loss fused, in chunks of tokens, as Liger Kernel's
// fused_linear_cross_entropy does for PyTorch: a chunk's logits [rows, vocab] are computed, turned
// into its loss, its arg-max hits and its gradient (softmax − one-hot) and dropped before the next
// chunk's are made, so the full [tokens, vocab] logits, their exponentials and their gradient
// never exist at once (at vocab 49152 and 1024 tokens each is 200 MB in float32). The gradients
// of the hidden states and the head weight are computed in the forward pass, where the chunk's
// softmax is at hand, and scaled by the loss's adjoint in the backward; a graph that asks for no
// gradient drops them (nothing reads them). The products are Head's: under Decoder.Autocast they
// take autocast (bf16) operands, as torch.autocast runs lm_head, and they go through the decoder's
// matmul (float32 GEMMs on 16-bit values on the Go backend); logits are rounded to the product's
// dtype and then, with the log-softmax, logsumexp and loss, float32 whatever the hidden states'
// dtype; the gradient products run in the product's dtype, as autocast's backward does. With one
// chunk the numbers are the unfused Head + CausalLMLoss's (the objectives differentiate the loss
// sum, so the backward's scale is 1); with several, the head weight's gradient sums the chunks'
// rounded products in float32.

// headLossChunkElements bounds a chunk's logits (rows × vocab values): 32 MiB in float32.
var headLossChunkElements = 1 << 23

// CausalLMHeadLoss returns what CausalLMLoss(d.Head(p, hidden), labels) returns, and correct: the
// number of counted positions whose arg-max logit is the label (TRL's mean_token_accuracy
// numerator). hidden is Hidden's output [batch, seq, hidden]; labels [batch, seq] as for
// CausalLMLoss. The logits are never materialized whole when the head is a plain weight (tied
// embeddings, or lm_head without bias through Dense or a PlainLinear that leaves it alone); an
// adapter on lm_head itself gets the unfused head.
func (d *Decoder) CausalLMHeadLoss(p Params, hidden, labels *Node) (sum, count, correct *Node) {
	targets := shiftLabels(labels)
	w := d.plainHeadWeight(p)
	if w == nil {
		logits := d.Head(p, hidden)
		sum, count = TokenCrossEntropy(logits, targets)
		return sum, count, argMaxHits(logits, targets)
	}
	h := hidden.Shape().Dim(-1)
	flat := Reshape(d.autocast(hidden), hidden.Shape().Size()/h, h)
	return fusedHeadCrossEntropy(flat, ConvertDType(w, flat.DType()), Reshape(targets, targets.Shape().Size()))
}

// plainHeadWeight returns the LM head's weight [vocab, hidden] when the head is that weight's
// plain product, else nil.
func (d *Decoder) plainHeadWeight(p Params) *Node {
	if d.Config.TieWordEmbeddings {
		return p["model.embed_tokens.weight"]
	}
	return PlainWeightOf(d.Linear, p, "lm_head")
}

// PlainLinear is a Linear that can say which modules it computes as the plain product x·Wᵀ of a
// weight, so the fused LM-head loss can take lm_head's weight past it (an adapter that leaves
// lm_head alone, a quantized base that keeps it in full precision).
type PlainLinear interface {
	Linear
	// PlainWeight returns module's weight [out, in] when Apply computes x·Wᵀ (+ bias) with it and
	// nothing else, else nil.
	PlainWeight(p Params, module string) *Node
}

// PlainWeightOf returns module's weight when lin (nil: Dense) computes module as x·Wᵀ without a
// bias, else nil.
func PlainWeightOf(lin Linear, p Params, module string) *Node {
	if p[module+".bias"] != nil {
		return nil
	}
	switch l := lin.(type) {
	case nil, Dense:
		return p[module+".weight"]
	case PlainLinear:
		return l.PlainWeight(p, module)
	}
	return nil
}

// shiftLabels returns the next-token targets: labels shifted left by one position, the last
// position IgnoreIndex, int32.
func shiftLabels(labels *Node) *Node {
	// Shift the labels rather than the logits: the last position gets IgnoreIndex, so the
	// [batch, seq, vocab] logits are neither copied by a slice nor padded back in the gradient.
	batch := labels.Shape().Dim(0)
	labels = ConvertDType(labels, dtypes.Int32)
	ignore := BroadcastToDims(Scalar(labels.Graph(), dtypes.Int32, IgnoreIndex), batch, 1)
	return Concatenate([]*Node{SliceAxis(labels, 1, AxisRangeToEnd(1)), ignore}, 1)
}

// argMaxHits counts the positions whose target is not IgnoreIndex and is the arg-max of logits
// [..., vocab] (float32 result, no gradient).
func argMaxHits(logits, targets *Node) *Node {
	pred := ArgMax(StopGradient(logits), -1, dtypes.Int32)
	valid := NotEqual(targets, Scalar(targets.Graph(), targets.DType(), IgnoreIndex))
	return ReduceAllSum(ConvertDType(LogicalAnd(valid, Equal(pred, targets)), dtypes.Float32))
}

// fusedHeadCrossEntropy is TokenCrossEntropy(hidden·wᵀ, targets) and argMaxHits of those logits
// for hidden [tokens, h], w [vocab, h] (same dtype) and targets [tokens] int32, chunk by chunk.
func fusedHeadCrossEntropy(hidden, w, targets *Node) (sum, count, correct *Node) {
	g := hidden.Graph()
	tokens, vocab := hidden.Shape().Dim(0), w.Shape().Dim(0)
	valid := NotEqual(targets, Scalar(g, dtypes.Int32, IgnoreIndex))
	safe := Where(valid, targets, ZerosLike(targets))
	validF := ConvertDType(valid, dtypes.Float32)
	count = ReduceAllSum(validF)

	chunks := max(1, (tokens*vocab+headLossChunkElements-1)/headLossChunkElements)
	rows := (tokens + chunks - 1) / chunks
	var dHidden, dWeight *Node
	sum = customGradient([]*Node{hidden, w}, func(in []*Node) *Node {
		h, w := in[0], in[1]
		var loss, dhs []*Node
		var dwT *Node // [h, vocab]: every product in GEMM order, one transpose at the end
		for lo := 0; lo < tokens; lo += rows {
			hi := min(lo+rows, tokens)
			hc := SliceAxis(h, 0, AxisRange(lo, hi))
			t := SliceAxis(safe, 0, AxisRange(lo, hi))
			v := SliceAxis(validF, 0, AxisRange(lo, hi))
			isValid := SliceAxis(valid, 0, AxisRange(lo, hi))
			logits := ConvertDType(matmul(hc, []int{1}, nil, w, []int{1}, nil), dtypes.Float32) // [rows, vocab]
			mx := ReduceMax(logits, -1)
			exps := Exp(Sub(logits, InsertAxes(mx, -1)))
			sums := ReduceSum(exps, -1)
			idx := Concatenate([]*Node{Iota(g, shapes.Make(dtypes.Int32, hi-lo, 1), 0), InsertAxes(t, -1)}, 1)
			loss = append(loss, ReduceAllSum(Mul(Sub(Add(Log(sums), mx), Gather(logits, idx)), v)))
			hits := LogicalAnd(isValid, Equal(ArgMax(logits, -1, dtypes.Int32), t))
			if correct == nil {
				correct = ReduceAllSum(ConvertDType(hits, dtypes.Float32))
			} else {
				correct = Add(correct, ReduceAllSum(ConvertDType(hits, dtypes.Float32)))
			}
			// d loss / d logits = (softmax − one-hot(target))·valid.
			dLogits := ScatterSum(Mul(exps, InsertAxes(Div(v, sums), -1)), idx, Neg(v), false, true)
			dLogits = ConvertDType(dLogits, h.DType())
			dhs = append(dhs, matmul(dLogits, []int{1}, nil, w, []int{0}, nil)) // [rows, h]
			part := matmul(TransposeAllAxes(hc, 1, 0), []int{1}, nil, dLogits, []int{0}, nil)
			if chunks > 1 {
				// One GEMM over every token accumulates in float32 and rounds once; so do the chunks.
				part = ConvertDType(part, dtypes.Float32)
			}
			if dwT == nil {
				dwT = part
			} else {
				dwT = Add(dwT, part)
			}
		}
		dHidden, dWeight = Concatenate(dhs, 0), ConvertDType(TransposeAllAxes(dwT, 1, 0), w.DType())
		total := loss[0]
		for _, l := range loss[1:] {
			total = Add(total, l)
		}
		return total
	}, func(dOut, _ *Node) []*Node {
		return []*Node{Mul(dHidden, ConvertDType(dOut, dHidden.DType())), Mul(dWeight, ConvertDType(dOut, dWeight.DType()))}
	})
	return sum, count, StopGradient(correct)
}
