package model

import (
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/support/exceptions"
)

// Starcoder2 differs from Llama in its norms (torch.nn.LayerNorm with a bias, eps norm_epsilon),
// its MLP (c_proj(act(c_fc(x))), no gate), and biases on every linear layer with use_bias
// (ParamSpecs). Its sliding window covers every layer, as Mistral's does; its head is tied by
// default. Dropout (embedding, residual, attention) is a training-time regularizer the decoder
// does not apply.

// layerNorm is torch's LayerNorm over the last axis, computed in float32 as torch does for
// half-precision inputs: (x − mean) / sqrt(var + eps) · w + b with the biased variance.
func layerNorm(w, b, x *Node, eps float64) *Node {
	if w == nil || b == nil {
		exceptions.Panicf("missing LayerNorm weight or bias")
	}
	dtype := x.DType()
	xf := ConvertDType(x, dtypes.Float32)
	centered := Sub(xf, ReduceAndKeep(xf, ReduceMean, -1))
	variance := ReduceAndKeep(Square(centered), ReduceMean, -1)
	normed := Div(centered, Sqrt(AddScalar(variance, eps)))
	wf := ExpandLeftToRank(ConvertDType(w, dtypes.Float32), normed.Rank())
	bf := ExpandLeftToRank(ConvertDType(b, dtypes.Float32), normed.Rank())
	return ConvertDType(Add(Mul(normed, wf), bf), dtype)
}

// starcoder2MLP is c_proj(act(c_fc(x))).
func (d *Decoder) starcoder2MLP(p Params, module string, x *Node, ctx *attentionContext) *Node {
	lin := d.linear(ctx.fast)
	act, _ := activationByName(d.Config.Activation())
	return lin.Apply(p, module+".c_proj", act(lin.Apply(p, module+".c_fc", x)))
}
