package model

import (
	"fmt"
	"log/slog"
	"math"
	"strings"

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
	// WeightAdapter, when set, adapts the weights used whole (the MoE router and experts).
	WeightAdapter WeightAdapter
	// RouterAuxLossCoef weighs a mixture-of-experts model's load-balancing loss in training
	// objectives (LogitsAndAuxLoss); 0 leaves it out. Load sets router_aux_loss_coef when the
	// config's output_router_logits is true, as transformers' forward adds it.
	RouterAuxLossCoef float64
	// GradientCheckpointing recomputes each layer's activations in the backward pass instead of
	// keeping them, trading compute for memory (transformers' gradient_checkpointing).
	GradientCheckpointing bool
	// FastGradients replaces GoMLX's generic gradients of the built-in linear layers, the LM
	// head and attention with hand-written ones whose matmuls are all in the Go backend's GEMM
	// layout (no N-d transposes; same sums). Set it on training graphs: the weights then pass
	// through identity nodes, which the Go backend copies, so inference graphs should leave it
	// off. It has no effect with GradientCheckpointing, with a KV cache, or on other backends.
	FastGradients bool
	// Autocast, when set (dtypes.BFloat16 for bf16: true), runs every matrix product — the Linear
	// layers, attention's two products and the LM head — on operands cast to that dtype, as
	// torch.autocast does; everything else follows torch's type promotion from the weights'
	// dtype (the residual stream stays in it), and softmax, RMSNorm statistics, RoPE tables and the
	// loss stay float32. InvalidDType, the zero value, computes in the weights' own dtype. Family
	// blocks get it through the Linear that linear() returns.
	Autocast dtypes.DType
	// Attention is the attention implementation (transformers' attn_implementation); the zero
	// value is eager. See AttentionImplementation.
	Attention AttentionImplementation
	// Logger, when set, receives one line per reason the fused attention falls back to eager.
	Logger *slog.Logger
	// NativeAccumulation makes 16-bit matrix products accumulate in their operands' dtype in the
	// graph instead of asking for float32 accumulation (GoMLX's default). GPU GEMMs accumulate
	// bf16/f16 products in float32 either way; XLA's CPU compiler implements the float32 request
	// by copying every 16-bit operand — weights included — to float32, copies that its CSE then
	// keeps alive from the forward to the backward pass. memory.Measure sets it to compile a
	// GPU-shaped step on CPU; training on CPU with it accumulates in 16 bits.
	NativeAccumulation bool
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
	// fast selects the hand-written gradients (Decoder.FastGradients).
	fast bool
	// ropeTables caches cos/sin broadcast to [batch, seq, heads, headDim] per head count, and
	// the rotate-half matrix, so every layer's RoPE is same-shape products and one small matmul.
	ropeTables map[int][2]*Node
	rotateHalf *Node
	// rowsCanBeEmpty is set when a query may have no key to attend to (padding), so the
	// hand-written attention gradient must mask its score adjoints like Where's gradient does.
	rowsCanBeEmpty bool
	// routerLogits collects each MoE layer's router logits [tokens, experts], in layer order,
	// for the load-balancing loss.
	routerLogits []*Node
	// keyValid [batch, keys] and segments [batch, seq] are the batch's padding and packing
	// inputs (nil when absent), which the fused attention takes in its own form.
	keyValid, segments *Node
}

// linear is the Linear every layer goes through: Decoder.Linear (Dense by default), its input cast
// to Autocast when that is set (every Linear computes in its input's dtype).
func (d *Decoder) linear(fast bool) Linear {
	var lin Linear = Dense{fastGradient: fast}
	if d.Linear != nil {
		lin = d.Linear
	}
	if d.Autocast != dtypes.InvalidDType {
		return autocastLinear{Linear: lin, decoder: d}
	}
	return lin
}

// autocastLinear casts a Linear's input to the decoder's Autocast dtype.
type autocastLinear struct {
	Linear
	decoder *Decoder
}

// Apply implements Linear.
func (l autocastLinear) Apply(p Params, module string, x *Node) *Node {
	return l.Linear.Apply(p, module, l.decoder.autocast(x))
}

// autocast casts a matrix product's operand to the Autocast dtype (torch.autocast's
// lower-precision ops); without Autocast it returns x.
func (d *Decoder) autocast(x *Node) *Node {
	if d.Autocast == dtypes.InvalidDType || x.DType() == d.Autocast || !x.DType().IsFloat() {
		return x
	}
	return ConvertDType(x, d.Autocast)
}

// promote converts x to the wider of its dtype and to's, as torch's type promotion does when a
// bf16 autocast output meets a float32 tensor.
func promote(x *Node, to dtypes.DType) *Node {
	if x.DType() == to || to.Size() < x.DType().Size() {
		return x
	}
	return ConvertDType(x, to)
}

// fastGradients says whether this graph uses the hand-written gradients (see FastGradients).
func (d *Decoder) fastGradients(x *Node) bool {
	return d.FastGradients && !d.GradientCheckpointing && useLayoutAwareGradients(x)
}

// Logits returns next-token logits [batch, seq, vocab] in float32.
func (d *Decoder) Logits(p Params, b Batch) *Node {
	return d.Head(p, d.Hidden(p, b))
}

// Head applies the LM head (lm_head, or the embedding matrix when tied) and returns float32 logits.
func (d *Decoder) Head(p Params, hidden *Node) *Node {
	if d.Config.TieWordEmbeddings {
		hidden = d.autocast(hidden)
		w := ConvertDType(p["model.embed_tokens.weight"], hidden.DType())
		if d.fastGradients(hidden) {
			return ConvertDType(denseLayoutAware(hidden, w), dtypes.Float32)
		}
		return ConvertDType(matmul(hidden, []int{hidden.Rank() - 1}, nil, w, []int{1}, nil), dtypes.Float32)
	}
	return ConvertDType(d.linear(d.fastGradients(hidden)).Apply(p, "lm_head", hidden), dtypes.Float32)
}

// Hidden returns the final normalized hidden states [batch, seq, hidden].
func (d *Decoder) Hidden(p Params, b Batch) *Node {
	h, _ := d.hidden(p, b)
	return h
}

// hidden is Hidden, also returning the forward pass's context (the MoE router logits).
func (d *Decoder) hidden(p Params, b Batch) (*Node, *attentionContext) {
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
	return d.run(p, ids, ctx), ctx
}

// newAttentionContext prepares RoPE tables and the attention masks shared by all layers.
// queryIdx [seq] and keyIdx [keys] are absolute slot indices (causality compares them);
// keyValid [batch, keys] marks usable keys.
func (d *Decoder) newAttentionContext(positions, queryIdx, keyIdx, keyValid, segments *Node, kv kvStore) *attentionContext {
	cos, sin := d.rope(positions)
	ctx := &attentionContext{cos: cos, sin: sin, windows: map[int]int{}, kv: kv, rowsCanBeEmpty: keyValid != nil,
		fast: kv == nil && d.fastGradients(positions), keyValid: keyValid, segments: segments}
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
	if d.NativeAccumulation {
		ids.Graph().AttachState(nativeAccumulationKey{}, true)
	}
	cfg := d.Config
	emb := param(p, "model.embed_tokens.weight")
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
	return d.norm(p, "model.norm", x)
}

func (d *Decoder) layer(p Params, i int, x *Node, ctx *attentionContext) *Node {
	prefix := fmt.Sprintf("model.layers.%d.", i)
	if d.GradientCheckpointing {
		p = tieToInput(p, prefix, x)
	}
	h := d.norm(p, prefix+"input_layernorm", x)
	// Under Autocast the blocks return bf16; torch's residual add promotes to the stream's dtype.
	x = Add(x, ConvertDType(d.attention(p, i, prefix+"self_attn", h, ctx), x.DType()))
	h = d.norm(p, prefix+"post_attention_layernorm", x)
	return Add(x, ConvertDType(d.feedForward(p, prefix, h, ctx), x.DType()))
}

// norm is the family's normalization of module: LayerNorm with bias (Starcoder2) or RMSNorm.
func (d *Decoder) norm(p Params, module string, x *Node) *Node {
	if d.Config.ModelType == Starcoder2 {
		return layerNorm(p[module+".weight"], p[module+".bias"], x, d.Config.NormEpsilon)
	}
	return d.rmsNorm(p[module+".weight"], x)
}

// feedForward is the family's MLP of the layer at prefix: Starcoder2's c_fc/c_proj, Mixtral's
// sparse mixture of experts, or the gated MLP of the others.
func (d *Decoder) feedForward(p Params, prefix string, x *Node, ctx *attentionContext) *Node {
	switch d.Config.ModelType {
	case Starcoder2:
		return d.starcoder2MLP(p, prefix+"mlp", x, ctx)
	case Mixtral:
		return d.sparseMoE(p, prefix+moeModule, x, ctx)
	}
	return d.mlp(p, prefix+"mlp", x, ctx)
}

// tieToInput returns p with the weights named prefix* passed through a scheduling barrier that
// depends on the layer's checkpointed input x. GoMLX's gradient checkpointing recomputes in the
// backward pass only what depends on a checkpoint; values derived from the weights alone — a
// ZeRO-3 all-gather of a sharded weight, an NF4 weight's dequantization, a 16-bit weight's float32
// copy on XLA's CPU — would otherwise be computed once and kept from the forward to the backward
// pass for every layer at once (measured: 7B QLoRA, 40 GiB of temporaries instead of ~3). Tied to
// x, they are recomputed per layer like the activations. XLA folds the tie of an integer weight
// away (NF4 codes), so the NF4 linear ties its codes itself (lora's tiedCodes).
func tieToInput(p Params, prefix string, x *Node) Params {
	tied := make(Params, len(p))
	for n, w := range p {
		if strings.HasPrefix(n, prefix) {
			w = SchedulingBarrier(w, x)
		}
		tied[n] = w
	}
	return tied
}

func (d *Decoder) mlp(p Params, module string, x *Node, ctx *attentionContext) *Node {
	lin := d.linear(ctx.fast)
	act, _ := activationByName(d.Config.Activation())
	gate := activate(act, lin.Apply(p, module+".gate_proj", x))
	return lin.Apply(p, module+".down_proj", Mul(gate, lin.Apply(p, module+".up_proj", x)))
}

// activate applies act; torch's CPU and CUDA kernels evaluate activations of 16-bit inputs in
// float32 and round once, so 16-bit inputs go through float32 here too.
func activate(act func(*Node) *Node, x *Node) *Node {
	if x.DType().Size() < 4 {
		return ConvertDType(act(ConvertDType(x, dtypes.Float32)), x.DType())
	}
	return act(x)
}

func (d *Decoder) attention(p Params, layer int, module string, x *Node, ctx *attentionContext) *Node {
	cfg := d.Config
	lin := d.linear(ctx.fast)
	batch, seq := x.Shape().Dim(0), x.Shape().Dim(1)
	heads, kvHeads, hd := cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim

	q := Reshape(lin.Apply(p, module+".q_proj", x), batch, seq, heads, hd)
	k := Reshape(lin.Apply(p, module+".k_proj", x), batch, seq, kvHeads, hd)
	v := Reshape(lin.Apply(p, module+".v_proj", x), batch, seq, kvHeads, hd)
	if cfg.ModelType == Qwen3 {
		q = d.rmsNorm(p[module+".q_norm.weight"], q)
		k = d.rmsNorm(p[module+".k_norm.weight"], k)
	}
	if cfg.UsesRope(layer) {
		// The RoPE tables are in the hidden states' dtype, so torch promotes autocast (bf16)
		// projections to it for the rotation; the products below cast them back.
		q = ctx.applyRope(promote(q, x.DType()))
		k = ctx.applyRope(promote(k, x.DType()))
	}
	q, k, v = d.autocast(q), d.autocast(k), d.autocast(v)

	window := cfg.LayerSlidingWindow(layer)
	scale := 1 / math.Sqrt(float64(hd))
	// eager takes q, k, v as [batch, seq, heads, hd] and returns the same layout.
	eager := func() *Node {
		// [batch, heads, seq, hd] layouts.
		q := TransposeAllAxes(q, 0, 2, 1, 3)
		k := TransposeAllAxes(k, 0, 2, 1, 3)
		v := TransposeAllAxes(v, 0, 2, 1, 3)
		if ctx.kv != nil {
			k, v = ctx.kv(layer, k, v)
		}
		group := heads / kvHeads

		// Query head h uses key/value head h/group (transformers' repeat_kv order).
		qg := Reshape(q, batch, kvHeads, group*seq, hd)
		mask := ctx.masks[ctx.windows[window]]
		var out *Node
		if ctx.fast {
			out = attentionLayoutAware(qg, k, v, mask, scale, heads, ctx.rowsCanBeEmpty)
		} else {
			out = attentionCore(qg, k, v, mask, scale, heads)
		}
		out = Reshape(out, batch, heads, seq, hd)
		return TransposeAllAxes(out, 0, 2, 1, 3)
	}
	var out *Node
	if d.Attention.fused() && ctx.kv == nil {
		out = d.fusedAttention(q, k, v, ctx, window, scale, eager)
	} else {
		out = eager()
	}
	return lin.Apply(p, module+".o_proj", Reshape(out, batch, seq, heads*hd))
}

// attentionCore is softmax(q·kᵀ·scale, masked)·v for grouped queries qg [b, kv, group*seq, hd]
// and k, v [b, kv, keys, hd]; it returns [b, kv, group*seq, hd]. GoMLX differentiates it.
func attentionCore(qg, k, v, mask *Node, scale float64, heads int) *Node {
	out, _ := attentionForward(qg, k, v, mask, scale, heads)
	return out
}

// attentionForward is attentionCore's forward pass; it also returns the probabilities
// [b, kv, group*seq, keys].
func attentionForward(qg, k, v, mask *Node, scale float64, heads int) (out, probs *Node) {
	batch, kvHeads, gs := qg.Shape().Dim(0), qg.Shape().Dim(1), qg.Shape().Dim(2)
	seq, keys := gs*kvHeads/heads, k.Shape().Dim(2)
	scores := matmul(qg, []int{3}, []int{0, 1}, k, []int{3}, []int{0, 1}) // [b, kv, group*seq, keys]
	scores = Reshape(scores, batch, heads, seq, keys)
	scores = MulScalar(scores, scale)
	scores = ConvertDType(scores, dtypes.Float32)
	scores = Where(BroadcastToDims(mask, batch, heads, seq, keys), scores,
		BroadcastToDims(Scalar(qg.Graph(), dtypes.Float32, -math.MaxFloat32), batch, heads, seq, keys))
	probs = Reshape(ConvertDType(Softmax(scores, -1), qg.DType()), batch, kvHeads, gs, keys)
	out = matmul(probs, []int{3}, []int{0, 1}, v, []int{2}, []int{0, 1}) // [b, kv, group*seq, hd]
	return out, probs
}

// attentionLayoutAware is attentionCore with a hand-written backward (the FlashAttention
// formulas): dP = dO·vᵀ, dS = P∘(dP − rowsum(dO∘O)), dq = dS·k·scale, dk = (qᵀ·dS)ᵀ,
// dv = (dOᵀ·P)ᵀ. Every matmul is in GEMM order; only [.., seq, hd]-sized operands are
// transposed, where GoMLX's generic gradient transposed the [.., seq, keys] adjoints and
// probabilities and differentiated the mask and the softmax elementwise.
func attentionLayoutAware(qg, k, v, mask *Node, scale float64, heads int, rowsCanBeEmpty bool) *Node {
	batch, kvHeads, gs := qg.Shape().Dim(0), qg.Shape().Dim(1), qg.Shape().Dim(2)
	seq, keys := gs*kvHeads/heads, k.Shape().Dim(2)
	var probs *Node
	return customGradient([]*Node{qg, k, v}, func(in []*Node) *Node {
		// The backward reads the identity-wrapped inputs, so the originals keep one reader
		// and the identities need no copy.
		qg, k, v = in[0], in[1], in[2]
		var out *Node
		out, probs = attentionForward(qg, k, v, mask, scale, heads)
		return out
	}, func(dOut, out *Node) []*Node {
		dOut = ConvertDType(dOut, out.DType())
		dP := matmul(dOut, []int{3}, []int{0, 1}, v, []int{3}, []int{0, 1}) // [b, kv, gs, keys]
		rowDot := ReduceAndKeep(Mul(dOut, out), ReduceSum, -1)              // [b, kv, gs, 1]
		dS := Mul(probs, Sub(dP, rowDot))
		if rowsCanBeEmpty {
			m := Reshape(BroadcastToDims(mask, batch, heads, seq, keys), batch, kvHeads, gs, keys)
			dS = Where(m, dS, ZerosLike(dS))
		}
		dQ := MulScalar(matmul(dS, []int{3}, []int{0, 1}, k, []int{2}, []int{0, 1}), scale)
		qT := transposeHeads(qg)                                            // [b, kv, hd, gs]
		dKT := matmul(qT, []int{3}, []int{0, 1}, dS, []int{2}, []int{0, 1}) // [b, kv, hd, keys]
		dK := MulScalar(TransposeAllAxes(dKT, 0, 1, 3, 2), scale)
		dOutT := transposeHeads(dOut)                                             // [b, kv, hd, gs]
		dVT := matmul(dOutT, []int{3}, []int{0, 1}, probs, []int{2}, []int{0, 1}) // [b, kv, hd, keys]
		return []*Node{dQ, dK, TransposeAllAxes(dVT, 0, 1, 3, 2)}
	})
}

// transposeHeads swaps the last two axes of x [b, h, rows, hd] as the batched product I·xᵀ with
// an identity matrix: one exact 1·x term per output (plus zeros), and faster on the Go backend
// than its generic N-d transpose (3.9 ms for [8,4,256,64] here).
func transposeHeads(x *Node) *Node {
	b, h, hd := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(3)
	if hd > 256 || !x.DType().IsFloat() {
		return TransposeAllAxes(x, 0, 1, 3, 2)
	}
	eye := Reshape(transposeTokensEye(x.Graph(), hd, x.DType()), 1, 1, hd, hd)
	eye = BroadcastToDims(eye, b, h, hd, hd)
	return matmul(eye, []int{3}, []int{0, 1}, x, []int{3}, []int{0, 1})
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

// applyRope is applyRope(x, ctx.cos, ctx.sin) for the Go backend's kernels. The tables are
// materialized over [batch, seq, heads, headDim] once per forward pass, so every product is a
// same-shape SIMD loop (the backend folds a BroadcastInDim feeding a binary op back into an
// implicit broadcast, and a broadcast over a middle axis runs through a generic index
// iterator). rotate-half is a product with a signed permutation matrix (exact: one ±1 term per
// output) instead of two slices, a negation and a concatenation, whose gradients are pads.
func (ctx *attentionContext) applyRope(x *Node) *Node {
	if !useLayoutAwareGradients(x) {
		return applyRope(x, ctx.cos, ctx.sin)
	}
	batch, seq, heads, hd := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), x.Shape().Dim(3)
	if ctx.ropeTables == nil {
		ctx.ropeTables = map[int][2]*Node{}
	}
	t, ok := ctx.ropeTables[heads]
	if !ok || t[0].DType() != x.DType() {
		// The reshapes keep the backend from folding the broadcast into the products (it
		// would then hand them a [batch, seq, 1, hd] operand again).
		table := func(tab *Node) *Node {
			b := BroadcastToDims(ConvertDType(InsertAxes(tab, 2), x.DType()), batch, seq, heads, hd)
			return Reshape(Reshape(b, batch*seq, heads*hd), batch, seq, heads, hd)
		}
		t = [2]*Node{table(ctx.cos), table(ctx.sin)}
		ctx.ropeTables[heads] = t
	}
	if ctx.rotateHalf == nil || ctx.rotateHalf.DType() != x.DType() {
		half := hd / 2
		r := make([]float32, hd*hd) // rotated[j] = Σ_i x[i]·r[i][j]
		for j := 0; j < half; j++ {
			r[(j+half)*hd+j] = -1
			r[j*hd+j+half] = 1
		}
		ctx.rotateHalf = ConvertDType(Reshape(Const(x.Graph(), r), hd, hd), x.DType())
	}
	rotated := matmul(x, []int{3}, nil, ctx.rotateHalf, []int{0}, nil)
	return Add(Mul(x, t[0]), Mul(rotated, t[1]))
}

// rmsNorm normalizes over the last axis in float32, as transformers does, then scales by w
// (Gemma scales by 1+w). Like transformers' LlamaRMSNorm, the normalized values are rounded to
// x's dtype and multiplied by w in the wider of the two dtypes.
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
	out := promote(x, w.DType()).DType()
	return Mul(ExpandLeftToRank(ConvertDType(w, out), normed.Rank()), ConvertDType(ConvertDType(normed, dtype), out))
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
	return TokenCrossEntropy(logits, shiftLabels(labels))
}

// IgnoreIndex is the label value that excludes a position from the loss (torch's default).
const IgnoreIndex = -100

// TokenCrossEntropy sums -log softmax(logits)[target] over positions whose target is not
// IgnoreIndex, and counts them. logits [..., vocab] float32, targets [...] int32.
func TokenCrossEntropy(logits, targets *Node) (sum, count *Node) {
	g := logits.Graph()
	vocab := logits.Shape().Dim(-1)
	targets = ConvertDType(targets, dtypes.Int32)
	valid := NotEqual(targets, Scalar(g, targets.DType(), IgnoreIndex))
	safe := Where(valid, targets, ZerosLike(targets))
	validF := ConvertDType(valid, logits.DType())
	count = ReduceAllSum(validF)
	if !useLayoutAwareGradients(logits) {
		logp := LogSoftmax(logits, -1)
		picked := ReduceSum(Mul(logp, OneHot(safe, vocab, logp.DType())), -1)
		return Neg(ReduceAllSum(Mul(picked, validF))), count
	}

	// -log softmax(x)[t] = logsumexp(x) - x[t], with the target logit gathered rather than
	// picked by a one-hot product over the vocabulary, and the gradient written by hand:
	// d/dx = (softmax(x) - onehot(t))·valid, reusing the forward's exp(x - max).
	n := targets.Shape().Size()
	rows := Reshape(logits, n, vocab)
	idx := Concatenate([]*Node{Iota(g, shapes.Make(dtypes.Int32, n, 1), 0), Reshape(safe, n, 1)}, 1)
	validN := Reshape(validF, n)
	var exps, sums *Node
	sum = customGradient([]*Node{rows}, func(in []*Node) *Node {
		x := in[0]
		mx := ReduceMax(x, -1)
		exps = Exp(Sub(x, InsertAxes(mx, -1)))
		sums = ReduceSum(exps, -1)
		lse := Add(Log(sums), mx)
		picked := Gather(x, idx)
		return ReduceAllSum(Mul(Sub(lse, picked), validN))
	}, func(dSum, _ *Node) []*Node {
		scale := Mul(validN, dSum) // [n]
		grad := Mul(exps, InsertAxes(Div(scale, sums), -1))
		return []*Node{ScatterSum(grad, idx, Neg(scale), false, true)}
	})
	return sum, count
}
