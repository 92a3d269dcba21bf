package train

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"strings"
)

// AdamW is torch.optim.AdamW: Adam moments with bias correction and weight decay decoupled from
// the gradient (p ← p − lr·wd·p before the Adam step).
type AdamW struct {
	Beta1, Beta2, Epsilon float64
	WeightDecay           float64
}

// DefaultAdamW has transformers' TrainingArguments defaults (adam_beta1 0.9, adam_beta2 0.999,
// adam_epsilon 1e-8, weight_decay 0).
func DefaultAdamW() AdamW {
	return AdamW{Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8}
}

// Update applies one AdamW step to a parameter. step is the 1-based step count (float32 scalar),
// lr the learning rate (scalar), decay whether weight decay applies to this parameter.
// It returns the new parameter and moments.
func (o AdamW) Update(param, grad, m, v, step, lr *Node, decay bool) (newParam, newM, newV *Node) {
	dtype := param.DType()
	g := ConvertDType(grad, m.DType())
	newM = Add(MulScalar(m, o.Beta1), MulScalar(g, 1-o.Beta1))
	newV = Add(MulScalar(v, o.Beta2), MulScalar(Square(g), 1-o.Beta2))
	bc1 := OneMinus(Pow(Scalar(step.Graph(), step.DType(), o.Beta1), step))
	bc2 := OneMinus(Pow(Scalar(step.Graph(), step.DType(), o.Beta2), step))
	// torch: denom = sqrt(v)/sqrt(bc2) + eps; p -= lr/bc1 * m/denom
	denom := AddScalar(Div(Sqrt(newV), Sqrt(bc2)), o.Epsilon)
	stepSize := Div(lr, bc1)
	p := ConvertDType(param, m.DType())
	if decay && o.WeightDecay != 0 {
		p = Mul(p, OneMinus(MulScalar(lr, o.WeightDecay)))
	}
	p = Sub(p, Mul(stepSize, Div(newM, denom)))
	return ConvertDType(p, dtype), newM, newV
}

// decays follows transformers: no weight decay on biases and norm weights.
func decays(name string) bool {
	return !strings.HasSuffix(name, ".bias") && !strings.Contains(name, "norm")
}
