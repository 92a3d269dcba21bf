package train

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"

	"handbook/model"
)

// Step is a compiled full fine-tuning step: forward, causal-LM loss over labels (IgnoreIndex
// excluded), backward and an AdamW update of every weight. The model's weights and the AdamW
// moments are updated in place (their device buffers are donated to the step).
type Step struct {
	Model *model.Model
	Opt   AdamW
	LR    float64

	names []string
	m, v  []*tensors.Tensor
	count int
	exec  *Exec
}

// NewStep prepares a step for m; moments start at zero like torch's.
func NewStep(m *model.Model, opt AdamW, lr float64) (*Step, error) {
	s := &Step{Model: m, Opt: opt, LR: lr, names: m.Weights.Names()}
	for _, n := range s.names {
		shape := shapes.Make(dtypes.Float32, m.Weights[n].Shape().Dimensions...)
		s.m = append(s.m, tensors.FromShape(shape))
		s.v = append(s.v, tensors.FromShape(shape))
	}
	n := len(s.names)
	dec := m.Decoder
	var err error
	s.exec, err = NewExec(m.Backend(), func(inputs []*Node) []*Node {
		params, moms, vels := inputs[:n], inputs[n:2*n], inputs[2*n:3*n]
		step, lr, ids, labels := inputs[3*n], inputs[3*n+1], inputs[3*n+2], inputs[3*n+3]
		p := model.ParamsFromNodes(s.names, params)
		logits := dec.Logits(p, model.Batch{InputIDs: ids})
		sum, count := model.CausalLMLoss(logits, labels)
		loss := Div(sum, count)
		grads := Gradient(loss, params...)
		outs := []*Node{loss}
		newP, newM, newV := make([]*Node, n), make([]*Node, n), make([]*Node, n)
		for i := range params {
			newP[i], newM[i], newV[i] = opt.Update(params[i], grads[i], moms[i], vels[i], step, lr, decays(s.names[i]))
		}
		outs = append(outs, newP...)
		outs = append(outs, newM...)
		return append(outs, newV...)
	})
	if err != nil {
		return nil, fmt.Errorf("train step: %w", err)
	}
	return s, nil
}

// decays follows transformers: no weight decay on biases and norm weights.
func decays(name string) bool {
	return !strings.HasSuffix(name, ".bias") && !strings.Contains(name, "norm")
}

// Run performs one step on a batch of token ids with the given labels and returns the loss.
func (s *Step) Run(ids, labels *tensors.Tensor) (float32, error) {
	s.count++
	n := len(s.names)
	backend := s.Model.Backend()
	args := make([]any, 0, 3*n+4)
	donate := func(t *tensors.Tensor) (any, error) { return DonateTensorBuffer(t, backend, compute.DeviceNum(0)) }
	for _, group := range [][]*tensors.Tensor{weightsOf(s.Model, s.names), s.m, s.v} {
		for _, t := range group {
			d, err := donate(t)
			if err != nil {
				return 0, fmt.Errorf("train step: %w", err)
			}
			args = append(args, d)
		}
	}
	args = append(args, tensors.FromScalar(float32(s.count)), tensors.FromScalar(float32(s.LR)), ids, labels)
	out, err := s.exec.Exec(args...)
	if err != nil {
		return 0, fmt.Errorf("train step %d: %w", s.count, err)
	}
	for i, name := range s.names {
		s.Model.Weights[name] = out[1+i]
		s.m[i] = out[1+n+i]
		s.v[i] = out[1+2*n+i]
	}
	return tensors.ToScalar[float32](out[0]), nil
}

func weightsOf(m *model.Model, names []string) []*tensors.Tensor {
	out := make([]*tensors.Tensor, len(names))
	for i, n := range names {
		out[i] = m.Weights[n]
	}
	return out
}

// Finalize frees the compiled step.
func (s *Step) Finalize() { s.exec.Finalize() }
