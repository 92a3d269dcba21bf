package model

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/support/exceptions"
)

// AttentionImplementation is transformers' attn_implementation: how attention is computed.
type AttentionImplementation string

// The implementations. Eager is the decoder's own graph (softmax in float32, hand-written
// gradients on the Go backend). SDPA and FlashAttention2 use the backend's fused
// scaled-dot-product attention (GoMLX's FusedScaledDotProductAttention: a cuDNN flash kernel on
// the XLA CUDA plugin, a fused forward on the Go backend) where the backend has it for the call,
// and fall back to eager otherwise, logging the reason once.
const (
	AttentionEager          AttentionImplementation = "eager"
	AttentionSDPA           AttentionImplementation = "sdpa"
	AttentionFlashAttention AttentionImplementation = "flash_attention_2"
)

// AttentionImplementations lists the accepted names.
var AttentionImplementations = []AttentionImplementation{AttentionEager, AttentionSDPA, AttentionFlashAttention}

// ParseAttentionImplementation accepts transformers' names; "" means eager.
func ParseAttentionImplementation(name string) (AttentionImplementation, error) {
	if name == "" {
		return AttentionEager, nil
	}
	for _, a := range AttentionImplementations {
		if string(a) == name {
			return a, nil
		}
	}
	names := make([]string, len(AttentionImplementations))
	for i, a := range AttentionImplementations {
		names[i] = string(a)
	}
	return "", fmt.Errorf("attn_implementation %q is not supported (supported: %s)", name, strings.Join(names, ", "))
}

// fused says whether the implementation asks for the backend's fused kernel.
func (a AttentionImplementation) fused() bool {
	return a == AttentionSDPA || a == AttentionFlashAttention
}

// fusedAttention computes attention with the backend's fused kernel for q [batch, seq, heads, hd]
// and k, v [batch, keys, kvHeads, hd] (grouped-query heads as transformers orders them), causal
// and masked like the eager path. eager computes the same from the same inputs; it is the
// fallback and, where the backend has no fused backward, the graph GoMLX differentiates.
// It returns [batch, seq, heads, hd].
//
// Padding: backends that take a boolean mask get the key mask (exact); the cuDNN path takes
// per-row lengths instead, which equals the mask for right-padded rows, the layout every
// collator here produces. Packed rows (segment ids) and sliding windows shorter than the
// sequence have no fused form here and run eager.
func (d *Decoder) fusedAttention(q, k, v *Node, ctx *attentionContext, window int, scale float64, eager func() *Node) *Node {
	g := q.Graph()
	keys := k.Shape().Dim(1)
	caps := g.Backend().Capabilities()
	switch {
	case !caps.Operations[compute.OpTypeFusedScaledDotProductAttention]:
		d.logFallback(fmt.Sprintf("backend %s has no fused scaled-dot-product attention", g.Backend().Name()))
		return eager()
	case ctx.segments != nil:
		d.logFallback("packed rows (segment_ids) need a block-diagonal mask the fused kernel does not take")
		return eager()
	case window > 0 && window < keys:
		d.logFallback(fmt.Sprintf("a sliding window (%d) shorter than the sequence (%d)", window, keys))
		return eager()
	}
	var rejected error
	fused := func() *Node {
		cfg := &compute.ScaledDotProductAttentionConfig{Scale: scale, Causal: true}
		if ctx.keyValid == nil {
			return callFused(q, k, v, cfg)
		}
		valid := NotEqual(ctx.keyValid, ZerosLike(ctx.keyValid))
		masked := *cfg
		masked.Mask = InternalBackendOutputs(Reshape(valid, valid.Shape().Dim(0), 1, 1, keys))[0]
		out, err := tryFused(q, k, v, &masked)
		if err == nil {
			return out
		}
		if !compute.IsNotImplemented(err) {
			panic(err)
		}
		lengths := ReduceSum(ConvertDType(valid, dtypes.Int32), -1) // [batch]
		withLengths := *cfg
		withLengths.QuerySeqLen = InternalBackendOutputs(lengths)[0]
		withLengths.KeyValueSeqLen = withLengths.QuerySeqLen
		out, err = tryFused(q, k, v, &withLengths)
		if err != nil {
			rejected = err
			panic(err)
		}
		return out
	}
	out, ok := InternalFusedOpCaller(fused, eager, !caps.Operations[compute.OpTypeFusedScaledDotProductAttentionVJP])
	if !ok {
		reason := "the backend rejected the call"
		if rejected != nil {
			reason += ": " + rejected.Error()
		}
		d.logFallback(reason)
	}
	return out
}

// callFused runs the backend's fused attention in the BSHD layout; it panics (as GoMLX does) when
// the backend rejects the call.
func callFused(q, k, v *Node, cfg *compute.ScaledDotProductAttentionConfig) *Node {
	out, _ := BackendFusedScaledDotProductAttention(q, k, v, compute.AttentionAxesLayoutBSHD, cfg)
	return out
}

// tryFused is callFused returning the backend's refusal as an error.
func tryFused(q, k, v *Node, cfg *compute.ScaledDotProductAttentionConfig) (out *Node, err error) {
	err = exceptions.TryCatch[error](func() { out = callFused(q, k, v, cfg) })
	return out, err
}

// fallbackLogged remembers the (logger, reason) pairs already logged, so a fallback is reported
// once per logger and reason rather than once per layer and graph.
var fallbackLogged sync.Map

func (d *Decoder) logFallback(reason string) {
	if d.Logger == nil {
		return
	}
	type key struct {
		logger *slog.Logger
		reason string
	}
	if _, seen := fallbackLogged.LoadOrStore(key{d.Logger, reason}, true); seen {
		return
	}
	d.Logger.Warn("attention: fused kernel not used, falling back to eager", "attn_implementation", string(d.Attention), "reason", reason)
}
