package model

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/gomlx/gomlx/support/xslices"
)

// Params maps Hugging Face tensor names ("model.layers.0.self_attn.q_proj.weight", …) to the
// graph nodes that hold them while a graph is built. Adapters add their own names.
type Params map[string]*Node

// Linear is the one seam every linear layer of the decoder goes through. module is the layer's
// Hugging Face module path ("model.layers.3.mlp.up_proj", "lm_head"); x has the input features on
// its last axis. Adapters (LoRA, quantized weights) implement Linear by wrapping another Linear,
// so the decoder never changes for them.
type Linear interface {
	Apply(p Params, module string, x *Node) *Node
}

// Dense is the plain linear layer: y = x·Wᵀ (+ b), with W stored as [out, in] like torch.
type Dense struct {
	// fastGradient selects the hand-written weight gradient (Decoder.FastGradients).
	fastGradient bool
}

// Apply implements Linear. It computes in x's dtype (the weight and bias are cast to it), which is
// how Decoder.Autocast reaches every Linear.
func (d Dense) Apply(p Params, module string, x *Node) *Node {
	w := ConvertDType(param(p, module+".weight"), x.DType())
	var y *Node
	if d.fastGradient && useLayoutAwareGradients(x) && w.Rank() == 2 && x.Rank() >= 2 {
		y = denseLayoutAware(x, w)
	} else {
		y = matmul(x, []int{x.Rank() - 1}, nil, w, []int{1}, nil)
	}
	if b := p[module+".bias"]; b != nil {
		y = Add(y, ExpandLeftToRank(ConvertDType(b, y.DType()), y.Rank()))
	}
	return y
}

// param returns p[name], panicking (as graph building reports errors) when it is missing.
func param(p Params, name string) *Node {
	w := p[name]
	if w == nil {
		exceptions.Panicf("missing parameter %s", name)
	}
	return w
}

// nativeAccumulationKey marks a graph built with Decoder.NativeAccumulation.
type nativeAccumulationKey struct{}

// matmul is DotGeneral for the decoder's products: 16-bit operands accumulate in their own dtype
// in graphs built with Decoder.NativeAccumulation, in float32 otherwise (GoMLX's default). On the
// Go backend, which has no fast 16-bit GEMM (bf16 made a training step ~2× slower), 16-bit
// operands are multiplied in float32 and the result rounded back: the same products, accumulation
// and rounding as a 16-bit GEMM with float32 accumulation.
func matmul(lhs *Node, lhsContracting, lhsBatch []int, rhs *Node, rhsContracting, rhsBatch []int) *Node {
	half := lhs.DType().IsHalfPrecision()
	if on, _ := lhs.Graph().State(nativeAccumulationKey{}).(bool); on && half {
		return Dot(lhs, rhs).WithAccumulatorDType(lhs.DType()).General(lhsContracting, lhsBatch, rhsContracting, rhsBatch)
	}
	if half && useLayoutAwareGradients(lhs) {
		f32 := dtypes.Float32
		y := DotGeneral(ConvertDType(lhs, f32), lhsContracting, lhsBatch, ConvertDType(rhs, f32), rhsContracting, rhsBatch)
		return ConvertDType(y, lhs.DType())
	}
	return DotGeneral(lhs, lhsContracting, lhsBatch, rhs, rhsContracting, rhsBatch)
}

// useLayoutAwareGradients says whether x's graph runs on the Go backend, whose kernels the
// hand-written gradients (Decoder.FastGradients) and the loss and RoPE formulations here are
// shaped for. The backend runs a DotGeneral without copies only when both operands have their
// contracting axes in GEMM order; otherwise it transposes them with a generic N-d iterator
// (~7–15 ns/element). GoMLX's DotGeneral VJP for a weight contracts over the leading
// [batch, seq] axes of both operands, so every weight gradient paid two such transposes (36% of
// the bench training step). XLA chooses layouts itself and keeps the generic graph.
func useLayoutAwareGradients(x *Node) bool {
	b := x.Graph().Backend()
	return b != nil && b.String() == "go"
}

// linearInputsKey keys the graph state that tracks, per input node, the linear layers reading
// it: they share one identity node that carries the input's gradient (so no copy of the input
// is made) and one transposed copy of it for the weight gradients (q/k/v, gate/up).
type linearInputsKey struct{}

type linearInput struct {
	wrapped    *Node          // identity of x whose gradient is the sum of dxs
	dxs        []func() *Node // each reader's contribution dy·W, nil before its backward
	uses       int            // readers
	transposed *Node          // [in, tokens], built once during the backward pass
}

func linearInputOf(x *Node) *linearInput {
	g := x.Graph()
	m, _ := g.State(linearInputsKey{}).(map[*Node]*linearInput)
	if m == nil {
		m = map[*Node]*linearInput{}
		g.AttachState(linearInputsKey{}, m)
	}
	li := m[x]
	if li == nil {
		li = &linearInput{}
		li.wrapped = IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
			var dx *Node
			for _, f := range li.dxs {
				if d := f(); d != nil {
					if dx == nil {
						dx = d
					} else {
						dx = Add(dx, d)
					}
				}
			}
			if dx == nil {
				dx = ZerosLike(x)
			}
			return dx
		})
		m[x] = li
	}
	return li
}

// denseLayoutAware computes x·Wᵀ with hand-written gradients whose matmuls are in GEMM order:
// dx = dy·W, and dW = dyᵀ·x or (xᵀ·dy)ᵀ, whichever transposes fewer elements (xᵀ is shared by
// every linear layer reading x). GoMLX's generic gradient transposes both [batch, seq, ·]
// operands of the weight gradient with the backend's N-d iterator and copies dx through an
// identity transpose. The values are the same sums.
func denseLayoutAware(x, w *Node) *Node {
	li := linearInputOf(x)
	li.uses++
	xs := li.wrapped
	var dy *Node // the output's adjoint, captured by the output identity below
	ws := IdentityWithCustomGradient(w, func(_, _ *Node) *Node {
		if dy == nil {
			exceptions.Panicf("linear weight gradient requested before its output's")
		}
		out, in := w.Shape().Dim(0), w.Shape().Dim(1)
		tokens := xs.Shape().Size() / in
		tokenAxes := xslices.Iota(0, xs.Rank()-1)
		// Elements moved by a transpose: dyᵀ costs tokens·out; xᵀ costs tokens·in (shared by
		// every linear layer reading x) plus in·out to turn dWᵀ around.
		if li.transposed != nil || tokens*in/li.uses+in*out < tokens*out {
			if li.transposed == nil {
				li.transposed = transposeTokens(xs) // [in, tokens...]
			}
			dwT := matmul(li.transposed, xslices.Iota(1, len(tokenAxes)), nil, dy, tokenAxes, nil) // [in, out]
			return TransposeAllAxes(dwT, 1, 0)
		}
		return matmul(transposeTokens(dy), xslices.Iota(1, len(tokenAxes)), nil, xs, tokenAxes, nil) // [out, in]
	})
	li.dxs = append(li.dxs, func() *Node {
		if dy == nil {
			return nil
		}
		return matmul(dy, []int{dy.Rank() - 1}, nil, w, []int{0}, nil) // [..., in]
	})
	y := matmul(xs, []int{xs.Rank() - 1}, nil, ws, []int{1}, nil)
	return IdentityWithCustomGradient(y, func(_, v *Node) *Node {
		dy = v
		return v
	})
}

// transposeTokens moves the feature axis of x [tokens..., features] first: [features, tokens...].
// For narrow matrices it is the product I·xᵀ with an identity matrix, which the Go backend's GEMM
// computes faster than its transpose (3.5 vs 5.5 ms for [2048,256] here: the transpose's column
// writes, 4·tokens bytes apart, thrash the cache when tokens is a power of two), and it reads x in
// place where a Reshape to 2-D would copy a shared x. Each output is one exact 1·x term plus
// zeros (so only non-finite inputs could differ from a transpose).
func transposeTokens(x *Node) *Node {
	features := x.Shape().Dim(-1)
	if features > 512 || !x.DType().IsFloat() {
		tokens := x.Shape().Size() / features
		t := TransposeAllAxes(Reshape(x, tokens, features), 1, 0)
		return Reshape(t, append([]int{features}, x.Shape().Dimensions[:x.Rank()-1]...)...)
	}
	eye := transposeTokensEye(x.Graph(), features, x.DType())
	return matmul(eye, []int{1}, nil, x, []int{x.Rank() - 1}, nil)
}

// transposeTokensEye is the n×n identity matrix.
func transposeTokensEye(g *Graph, n int, dtype dtypes.DType) *Node {
	rows := Iota(g, shapes.Make(dtypes.Int32, n, n), 0)
	cols := Iota(g, shapes.Make(dtypes.Int32, n, n), 1)
	return ConvertDType(Equal(rows, cols), dtype)
}

// customGradient returns forward(inputs) with a hand-written gradient: backward receives the
// adjoint of the output and the output, and returns one adjoint per input. forward and backward
// may share nodes through captured variables (backward runs after forward, during Gradient).
// The inputs pass through identity nodes that carry the gradient; GoMLX's own gradient of
// forward is still built but nothing consumes it, so the backend drops it. An identity copies
// its input only when the input has other readers, so backward should read the wrapped inputs.
func customGradient(inputs []*Node, forward func(in []*Node) *Node, backward func(dOut, out *Node) []*Node) *Node {
	var dOut, out *Node
	var grads []*Node
	wrapped := make([]*Node, len(inputs))
	for i, x := range inputs {
		wrapped[i] = IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
			if dOut == nil {
				exceptions.Panicf("custom gradient: input adjoint requested before the output's")
			}
			if grads == nil {
				grads = backward(dOut, out)
				if len(grads) != len(inputs) {
					exceptions.Panicf("custom gradient: backward returned %d adjoints for %d inputs", len(grads), len(inputs))
				}
			}
			return grads[i]
		})
	}
	out = IdentityWithCustomGradient(forward(wrapped), func(_, v *Node) *Node {
		dOut, grads = v, nil
		return v
	})
	return out
}

// WeightAdapter is the seam for weights the decoder uses whole rather than through Linear: the
// MoE router ([experts, hidden]) and the stacked experts ([experts, out, in]), which PEFT adapts
// as target_parameters. AdaptWeight returns the weight a graph uses for target (a
// Config.ParamTargets name) given its base value w; LoRA adds its low-rank update there.
type WeightAdapter interface {
	AdaptWeight(p Params, target string, w *Node) *Node
}

// adaptWeight passes a whole-used weight through the decoder's WeightAdapter, if any.
func (d *Decoder) adaptWeight(p Params, target string, w *Node) *Node {
	if d.WeightAdapter == nil {
		return w
	}
	return d.WeightAdapter.AdaptWeight(p, target, w)
}
