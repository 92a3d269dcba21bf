package model

import (
	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/support/exceptions"
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
type Dense struct{}

// Apply implements Linear.
func (Dense) Apply(p Params, module string, x *Node) *Node {
	w := p[module+".weight"]
	if w == nil {
		exceptions.Panicf("missing parameter %s.weight", module)
	}
	b := p[module+".bias"]
	if fusedDense(x, w, b) {
		// The backend's fused dense (the Go backend's) computes x·Wᵀ straight from the [out,in]
		// layout and has a fused backward: its weight gradient needs one blocked 2-D transpose of
		// the output gradient, where DotGeneral's generic VJP transposes both [batch,seq,·]
		// operands with the slow N-d iterator.
		return BackendFusedDense(x, w, b, compute.DenseConfig{WeightLayout: compute.DenseLayoutOutputsInput})
	}
	y := DotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{1}, nil)
	if b != nil {
		y = Add(y, ExpandLeftToRank(b, y.Rank()))
	}
	return y
}

// fusedDense reports whether x·Wᵀ (+b) should use the backend's FusedDense: the backend has it
// and its VJP, the dtypes agree and the weight is a plain [out,in] matrix.
func fusedDense(x, w, b *Node) bool {
	caps := x.Graph().Backend().Capabilities()
	if !caps.Operations[compute.OpTypeFusedDense] || !caps.Operations[compute.OpTypeFusedDenseVJP] {
		return false
	}
	if w.Rank() != 2 || x.DType() != w.DType() || (b != nil && (b.DType() != w.DType() || b.Rank() != 1)) {
		return false
	}
	return x.Rank() >= 2
}
