package lora

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/gomlx/gomlx/support/xslices"
)

// useLayoutAwareGradients says whether x's graph runs on the Go backend, whose DotGeneral runs
// without copies only when both operands have their contracting axes in GEMM order. GoMLX's
// generic DotGeneral gradient contracts over the leading [batch, seq] axes and pays N-d
// transposes there (see model.Decoder.FastGradients); XLA picks layouts itself.
func useLayoutAwareGradients(x *Node) bool {
	b := x.Graph().Backend()
	return b != nil && b.String() == "go"
}

// frozenLoRALinear computes y = x·Wᵀ (+ bias) + s·(x·Aᵀ)·Bᵀ (W nil: the adapter term alone) with hand-written gradients whose
// matmuls are all in GEMM order: W and bias are frozen (no gradient), A and B (nil for a frozen
// layer without adapter) get
//
//	dB = s·dyᵀ·h = s·(hᵀ·dy)ᵀ   (h = x·Aᵀ, [tokens, r]: only rank-r tensors are transposed)
//	dA = dhᵀ·x                  (dh = s·dy·B)
//	dx = dy·W + dh·A
//
// the same sums GoMLX's generic gradient computes, without its transposes of [tokens, in/out]
// operands.
func frozenLoRALinear(x, w, bias, a, b *Node, scale float64) *Node {
	var dy, h, dh *Node
	adjoint := func() *Node {
		if dy == nil {
			exceptions.Panicf("lora: linear input gradient requested before its output's")
		}
		return dy
	}
	hidden := func() *Node { // dh = s·dy·B, [tokens..., r]
		if dh == nil {
			g := adjoint()
			dh = MulScalar(DotGeneral(g, []int{g.Rank() - 1}, nil, b, []int{0}, nil), scale)
		}
		return dh
	}
	xs := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		var dx *Node
		if w != nil {
			g := adjoint()
			dx = DotGeneral(g, []int{g.Rank() - 1}, nil, w, []int{0}, nil)
		}
		if a != nil {
			d := hidden()
			da := DotGeneral(d, []int{d.Rank() - 1}, nil, a, []int{0}, nil)
			if dx == nil {
				return da
			}
			dx = Add(dx, da)
		}
		return dx
	})
	var y *Node
	if w != nil {
		y = DotGeneral(xs, []int{xs.Rank() - 1}, nil, w, []int{1}, nil)
	}
	if a != nil {
		tokenAxes := xslices.Iota(0, x.Rank()-1)
		as := IdentityWithCustomGradient(a, func(_, _ *Node) *Node { // [r, in]
			return DotGeneral(transposeTokens(hidden()), xslices.Iota(1, len(tokenAxes)), nil, xs, tokenAxes, nil)
		})
		bs := IdentityWithCustomGradient(b, func(_, _ *Node) *Node { // [out, r]
			t := DotGeneral(transposeTokens(h), xslices.Iota(1, len(tokenAxes)), nil, adjoint(), tokenAxes, nil) // [r, out]
			return MulScalar(TransposeAllAxes(t, 1, 0), scale)
		})
		h = DotGeneral(xs, []int{xs.Rank() - 1}, nil, as, []int{1}, nil)
		z := MulScalar(DotGeneral(h, []int{h.Rank() - 1}, nil, bs, []int{1}, nil), scale)
		if y == nil {
			y = z
		} else {
			y = Add(y, z)
		}
	}
	if bias != nil {
		y = Add(y, ExpandLeftToRank(StopGradient(bias), y.Rank()))
	}
	return IdentityWithCustomGradient(y, func(_, v *Node) *Node {
		dy, dh = v, nil
		return v
	})
}

// transposeTokens moves the (narrow) feature axis of x [tokens..., r] first: [r, tokens...].
func transposeTokens(x *Node) *Node {
	perm := append([]int{x.Rank() - 1}, xslices.Iota(0, x.Rank()-1)...)
	return TransposeAllAxes(x, perm...)
}
