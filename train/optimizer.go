package train

import (
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"strings"
)

// Optimizer updates one parameter from its (clipped) gradient. Its per-parameter state tensors
// have the parameter's shape in float32, start at zero and are saved in checkpoints under
// StateNames (torch's state keys).
type Optimizer interface {
	StateNames() []string
	// Update returns the new parameter and state. step is the 1-based step count and lr the
	// learning rate (float32 scalars); decay says whether weight decay applies to the parameter.
	Update(param, grad *Node, state []*Node, step, lr *Node, decay bool) (newParam *Node, newState []*Node)
}

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

// StateNames implements Optimizer: torch's state keys.
func (AdamW) StateNames() []string { return []string{"exp_avg", "exp_avg_sq"} }

// Update implements Optimizer: one AdamW step of a parameter.
func (o AdamW) Update(param, grad *Node, state []*Node, step, lr *Node, decay bool) (*Node, []*Node) {
	m, v := state[0], state[1]
	dtype := param.DType()
	g := ConvertDType(grad, m.DType())
	newM := Add(MulScalar(m, o.Beta1), MulScalar(g, 1-o.Beta1))
	newV := Add(MulScalar(v, o.Beta2), MulScalar(Square(g), 1-o.Beta2))
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
	return ConvertDType(p, dtype), []*Node{newM, newV}
}

// decays follows transformers: no weight decay on biases and norm weights.
func decays(name string) bool {
	return !strings.HasSuffix(name, ".bias") && !strings.Contains(name, "norm")
}

// RMSprop is torch.optim.RMSprop without momentum or centering, as transformers builds it for
// optim "rmsprop": square_avg ← α·square_avg + (1−α)·g², p ← p − lr·g/(√square_avg + ε), with
// weight decay added to the gradient (L2, torch's RMSprop weight_decay).
type RMSprop struct {
	Alpha, Epsilon, WeightDecay float64
}

// DefaultRMSprop has torch's defaults (alpha 0.99, eps 1e-8).
func DefaultRMSprop() RMSprop { return RMSprop{Alpha: 0.99, Epsilon: 1e-8} }

// StateNames implements Optimizer.
func (RMSprop) StateNames() []string { return []string{"square_avg"} }

// Update implements Optimizer.
func (o RMSprop) Update(param, grad *Node, state []*Node, _, lr *Node, decay bool) (*Node, []*Node) {
	p, g := coupledDecay(param, grad, state[0].DType(), o.WeightDecay, decay)
	sq := Add(MulScalar(state[0], o.Alpha), MulScalar(Square(g), 1-o.Alpha))
	p = Sub(p, Mul(lr, Div(g, AddScalar(Sqrt(sq), o.Epsilon))))
	return ConvertDType(p, param.DType()), []*Node{sq}
}

// SGD is torch.optim.SGD without momentum, as transformers builds it for optim "sgd":
// p ← p − lr·(g + wd·p).
type SGD struct {
	WeightDecay float64
}

// StateNames implements Optimizer: plain SGD keeps no state.
func (SGD) StateNames() []string { return nil }

// Update implements Optimizer.
func (o SGD) Update(param, grad *Node, _ []*Node, _, lr *Node, decay bool) (*Node, []*Node) {
	p, g := coupledDecay(param, grad, dtypes.Float32, o.WeightDecay, decay)
	return ConvertDType(Sub(p, Mul(lr, g)), param.DType()), nil
}

// coupledDecay converts param and grad to dtype and adds L2 weight decay to the gradient, the
// torch convention for optimizers other than AdamW.
func coupledDecay(param, grad *Node, dtype dtypes.DType, wd float64, decay bool) (p, g *Node) {
	p, g = ConvertDType(param, dtype), ConvertDType(grad, dtype)
	if decay && wd != 0 {
		g = Add(g, MulScalar(p, wd))
	}
	return p, g
}
