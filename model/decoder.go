package model

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/support/exceptions"
)

// Decoder builds the computation graph of a decoder-only language model for a Config.
// It holds no weights: they come in as Params, so the same Decoder serves training (params
// as graph inputs that get gradients), inference, adapters and sharded strategies.
type Decoder struct {
	Config *Config
	// Linear computes every linear layer; nil means Dense.
	Linear Linear
	// GradientCheckpointing recomputes each layer's activations in the backward pass instead of
	// keeping them, trading compute for memory (transformers' gradient_checkpointing).
	GradientCheckpointing bool
}

// Batch is the graph input of one forward pass. Only InputIDs is required.
type Batch struct {
	// InputIDs are token ids, [batch, seq], any integer dtype.
	InputIDs *Node
	// PositionIDs are RoPE positions, [batch, seq]; default 0…seq-1 for every row (as
	// transformers does without a cache). Packed rows restart them for each sample.
	PositionIDs *Node
	// AttentionMask marks real tokens with 1 and padding with 0, [batch, seq].
	AttentionMask *Node
	// SegmentIDs label packed samples, [batch, seq]: a token attends only to earlier tokens of
	// its own segment.
	SegmentIDs *Node
}

// kvStore lets generation keep keys and values between calls: it receives the layer's new
// keys/values [batch, kvHeads, seq, headDim] and returns the full keys/values to attend to.
type kvStore func(layer int, k, v *Node) (allK, allV *Node)

// attentionContext is what every layer's attention shares for one forward pass.
type attentionContext struct {
	cos, sin *Node   // [batch, seq, headDim]
	masks    []*Node // per distinct window: [batch, 1, seq, keys] bool; index by windowIndex
	windows  map[int]int
	kv       kvStore
}

func (d *Decoder) linear() Linear {
	if d.Linear == nil {
		return Dense{}
	}
	return d.Linear
}

// Logits returns next-token logits [batch, seq, vocab] in float32.
func (d *Decoder) Logits(p Params, b Batch) *Node {
	return d.Head(p, d.Hidden(p, b))
}

// Head applies the LM head (lm_head, or the embedding matrix when tied) and returns float32 logits.
func (d *Decoder) Head(p Params, hidden *Node) *Node {
	if d.Config.TieWordEmbeddings {
		w := p["model.embed_tokens.weight"]
		return ConvertDType(DotGeneral(hidden, []int{hidden.Rank() - 1}, nil, w, []int{1}, nil), dtypes.Float32)
	}
	return ConvertDType(d.linear().Apply(p, "lm_head", hidden), dtypes.Float32)
}

// Hidden returns the final normalized hidden states [batch, seq, hidden].
func (d *Decoder) Hidden(p Params, b Batch) *Node {
	ids := b.InputIDs
	g := ids.Graph()
	batch, seq := ids.Shape().Dim(0), ids.Shape().Dim(1)
	positions := b.PositionIDs
	if positions == nil {
		positions = Iota(g, shapes.Make(dtypes.Int32, batch, seq), 1)
	}
	queryIdx := Iota(g, shapes.Make(dtypes.Int32, seq), 0)
	keyIdx := queryIdx
	ctx := d.newAttentionContext(positions, queryIdx, keyIdx, b.AttentionMask, b.SegmentIDs, nil)
	return d.run(p, ids, ctx)
}

// newAttentionContext prepares RoPE tables and the attention masks shared by all layers.
// queryIdx [seq] and keyIdx [keys] are absolute slot indices (causality compares them);
// keyValid [batch, keys] marks usable keys.
func (d *Decoder) newAttentionContext(positions, queryIdx, keyIdx, keyValid, segments *Node, kv kvStore) *attentionContext {
	cos, sin := d.rope(positions)
	ctx := &attentionContext{cos: cos, sin: sin, windows: map[int]int{}, kv: kv}
	for i := 0; i < d.Config.NumHiddenLayers; i++ {
		w := d.Config.LayerSlidingWindow(i)
		if _, ok := ctx.windows[w]; ok {
			continue
		}
		ctx.windows[w] = len(ctx.masks)
		ctx.masks = append(ctx.masks, attentionMask(queryIdx, keyIdx, keyValid, segments, w))
	}
	return ctx
}

func (d *Decoder) run(p Params, ids *Node, ctx *attentionContext) *Node {
	cfg := d.Config
	emb := p["model.embed_tokens.weight"]
	if emb == nil {
		exceptions.Panicf("missing parameter model.embed_tokens.weight")
	}
	x := Gather(emb, InsertAxes(ConvertDType(ids, dtypes.Int32), -1))
	if cfg.ModelType == Gemma {
		// transformers rounds sqrt(hidden) to the hidden dtype before multiplying.
		x = Mul(x, Scalar(x.Graph(), x.DType(), math.Sqrt(float64(cfg.HiddenSize))))
	}
	for i := 0; i < cfg.NumHiddenLayers; i++ {
		if d.GradientCheckpointing {
			x = x.Checkpoint()
		}
		x = d.layer(p, i, x, ctx)
	}
	if d.GradientCheckpointing {
		x = x.StopCheckpoint()
	}
	return d.rmsNorm(p["model.norm.weight"], x)
}

func (d *Decoder) layer(p Params, i int, x *Node, ctx *attentionContext) *Node {
	prefix := fmt.Sprintf("model.layers.%d.", i)
	h := d.rmsNorm(p[prefix+"input_layernorm.weight"], x)
	x = Add(x, d.attention(p, i, prefix+"self_attn", h, ctx))
	h = d.rmsNorm(p[prefix+"post_attention_layernorm.weight"], x)
	return Add(x, d.mlp(p, prefix+"mlp", h))
}

func (d *Decoder) mlp(p Params, module string, x *Node) *Node {
	lin := d.linear()
	act, _ := activationByName(d.Config.Activation())
	gate := act(lin.Apply(p, module+".gate_proj", x))
	return lin.Apply(p, module+".down_proj", Mul(gate, lin.Apply(p, module+".up_proj", x)))
}

func (d *Decoder) attention(p Params, layer int, module string, x *Node, ctx *attentionContext) *Node {
	cfg := d.Config
	lin := d.linear()
	batch, seq := x.Shape().Dim(0), x.Shape().Dim(1)
	heads, kvHeads, hd := cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim

	q := Reshape(lin.Apply(p, module+".q_proj", x), batch, seq, heads, hd)
	k := Reshape(lin.Apply(p, module+".k_proj", x), batch, seq, kvHeads, hd)
	v := Reshape(lin.Apply(p, module+".v_proj", x), batch, seq, kvHeads, hd)
	if cfg.ModelType == Qwen3 {
		q = d.rmsNorm(p[module+".q_norm.weight"], q)
		k = d.rmsNorm(p[module+".k_norm.weight"], k)
	}
	q = applyRope(q, ctx.cos, ctx.sin)
	k = applyRope(k, ctx.cos, ctx.sin)

	// [batch, heads, seq, hd] layouts.
	q = TransposeAllAxes(q, 0, 2, 1, 3)
	k = TransposeAllAxes(k, 0, 2, 1, 3)
	v = TransposeAllAxes(v, 0, 2, 1, 3)
	if ctx.kv != nil {
		k, v = ctx.kv(layer, k, v)
	}
	keys := k.Shape().Dim(2)
	group := heads / kvHeads

	// Query head h uses key/value head h/group (transformers' repeat_kv order).
	qg := Reshape(q, batch, kvHeads, group*seq, hd)
	scores := DotGeneral(qg, []int{3}, []int{0, 1}, k, []int{3}, []int{0, 1}) // [b, kv, group*seq, keys]
	scores = Reshape(scores, batch, heads, seq, keys)
	scores = MulScalar(scores, 1/math.Sqrt(float64(hd)))
	scores = ConvertDType(scores, dtypes.Float32)
	mask := ctx.masks[ctx.windows[cfg.LayerSlidingWindow(layer)]]
	scores = Where(BroadcastToDims(mask, batch, heads, seq, keys), scores,
		BroadcastToDims(Scalar(x.Graph(), dtypes.Float32, -math.MaxFloat32), batch, heads, seq, keys))
	probs := ConvertDType(Softmax(scores, -1), q.DType())

	pg := Reshape(probs, batch, kvHeads, group*seq, keys)
	out := DotGeneral(pg, []int{3}, []int{0, 1}, v, []int{2}, []int{0, 1}) // [b, kv, group*seq, hd]
	out = Reshape(out, batch, heads, seq, hd)
	out = Reshape(TransposeAllAxes(out, 0, 2, 1, 3), batch, seq, heads*hd)
	return lin.Apply(p, module+".o_proj", out)
}

// attentionMask is true where query i may attend key j: causal by slot index, key valid,
// same segment, inside the sliding window. Shape [batch or 1, 1, seq, keys].
func attentionMask(queryIdx, keyIdx, keyValid, segments *Node, window int) *Node {
	seq, keys := queryIdx.Shape().Dim(0), keyIdx.Shape().Dim(0)
	qi := Reshape(queryIdx, 1, 1, seq, 1)
	kj := Reshape(keyIdx, 1, 1, 1, keys)
	mask := GreaterOrEqual(qi, kj)
	if window > 0 {
		mask = LogicalAnd(mask, LessThan(Sub(qi, kj), Scalar(qi.Graph(), qi.DType(), window)))
	}
	if keyValid != nil {
		valid := NotEqual(keyValid, ZerosLike(keyValid))
		mask = LogicalAnd(mask, Reshape(valid, valid.Shape().Dim(0), 1, 1, keys))
	}
	if segments != nil {
		b := segments.Shape().Dim(0)
		same := Equal(Reshape(segments, b, 1, seq, 1), Reshape(segments, b, 1, 1, keys))
		mask = LogicalAnd(mask, same)
	}
	return mask
}

// rope returns cos and sin tables [batch, seq, headDim] for the given positions, in the
// rotate-half layout transformers uses (the two halves repeat the same frequencies).
func (d *Decoder) rope(positions *Node) (cos, sin *Node) {
	g := positions.Graph()
	inv64 := d.Config.InvFrequencies()
	inv := make([]float32, len(inv64))
	for i, f := range inv64 {
		inv[i] = float32(f)
	}
	batch, seq := positions.Shape().Dim(0), positions.Shape().Dim(1)
	pos := Reshape(ConvertDType(positions, dtypes.Float32), batch, seq, 1)
	freqs := Mul(pos, Reshape(Const(g, inv), 1, 1, len(inv)))
	emb := Concatenate([]*Node{freqs, freqs}, -1)
	return Cos(emb), Sin(emb)
}

// applyRope rotates x [batch, seq, heads, headDim] by the tables [batch, seq, headDim].
func applyRope(x, cos, sin *Node) *Node {
	half := x.Shape().Dim(-1) / 2
	x1 := SliceAxis(x, -1, AxisRange(0, half))
	x2 := SliceAxis(x, -1, AxisRangeToEnd(half))
	rotated := Concatenate([]*Node{Neg(x2), x1}, -1)
	c := ConvertDType(InsertAxes(cos, 2), x.DType())
	s := ConvertDType(InsertAxes(sin, 2), x.DType())
	return Add(Mul(x, c), Mul(rotated, s))
}

// rmsNorm normalizes over the last axis in float32, as transformers does, then scales by w
// (Gemma scales by 1+w).
func (d *Decoder) rmsNorm(w, x *Node) *Node {
	if w == nil {
		exceptions.Panicf("missing RMSNorm weight")
	}
	dtype := x.DType()
	xf := ConvertDType(x, dtypes.Float32)
	variance := ReduceAndKeep(Square(xf), ReduceMean, -1)
	normed := Div(xf, Sqrt(AddScalar(variance, d.Config.RMSNormEps)))
	wf := ExpandLeftToRank(ConvertDType(w, dtypes.Float32), normed.Rank())
	if d.Config.ModelType == Gemma {
		return ConvertDType(Mul(normed, OnePlus(wf)), dtype)
	}
	return Mul(ExpandLeftToRank(w, normed.Rank()), ConvertDType(normed, dtype))
}

// activationByName returns the MLP activation for a transformers ACT2FN name.
func activationByName(name string) (func(*Node) *Node, error) {
	switch name {
	case "silu", "swish":
		return func(x *Node) *Node { return Mul(x, Sigmoid(x)) }, nil
	case "gelu":
		return func(x *Node) *Node {
			return Mul(MulScalar(x, 0.5), OnePlus(Erf(MulScalar(x, 1/math.Sqrt2))))
		}, nil
	case "gelu_pytorch_tanh", "gelu_new", "gelu_fast":
		return func(x *Node) *Node {
			inner := MulScalar(Add(x, MulScalar(Mul(x, Square(x)), 0.044715)), math.Sqrt(2/math.Pi))
			return Mul(MulScalar(x, 0.5), OnePlus(Tanh(inner)))
		}, nil
	case "relu":
		return func(x *Node) *Node { return Max(x, ZerosLike(x)) }, nil
	}
	return nil, fmt.Errorf("hidden_act %q is not supported (supported: silu, gelu, gelu_pytorch_tanh, gelu_new, relu)", name)
}

// CausalLMLoss is transformers' causal LM loss: the mean cross entropy of logits[:, t] against
// labels[:, t+1] over positions whose label is not ignoreIndex (-100). It returns the summed loss
// and the number of counted tokens, so callers can normalize across micro-batches.
func CausalLMLoss(logits, labels *Node) (sum, count *Node) {
	seq := logits.Shape().Dim(1)
	pred := SliceAxis(logits, 1, AxisRange(0, seq-1))
	target := ConvertDType(SliceAxis(labels, 1, AxisRangeToEnd(1)), dtypes.Int32)
	return TokenCrossEntropy(pred, target)
}

// IgnoreIndex is the label value that excludes a position from the loss (torch's default).
const IgnoreIndex = -100

// TokenCrossEntropy sums -log softmax(logits)[target] over positions whose target is not
// IgnoreIndex, and counts them. logits [..., vocab] float32, targets [...] int32.
func TokenCrossEntropy(logits, targets *Node) (sum, count *Node) {
	g := logits.Graph()
	vocab := logits.Shape().Dim(-1)
	valid := NotEqual(targets, Scalar(g, targets.DType(), IgnoreIndex))
	safe := Where(valid, targets, ZerosLike(targets))
	logp := LogSoftmax(logits, -1)
	picked := ReduceSum(Mul(logp, OneHot(safe, vocab, logp.DType())), -1)
	validF := ConvertDType(valid, logp.DType())
	sum = Neg(ReduceAllSum(Mul(picked, validF)))
	count = ReduceAllSum(validF)
	return sum, count
}
