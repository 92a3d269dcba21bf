package train

import (
	"fmt"

	"github.com/gomlx/compute/distributed"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"

	"handbook/model"
)

// weightLayout is what a step's graphs are built from: the weights' names, split into trainable and
// frozen (each sorted), and their storage shapes. The Engine and the sharded step take it from
// their model's tensors (modelLayout); CompileStepMemory from shapes alone.
type weightLayout struct {
	trainable, frozen []string
	shapes            map[string]shapes.Shape
}

// newWeightLayout splits the named shapes by trainable (nil: all trainable).
func newWeightLayout(weights map[string]shapes.Shape, trainable func(string) bool) weightLayout {
	l := weightLayout{shapes: weights}
	for _, n := range sortedNames(weights) {
		if trainable == nil || trainable(n) {
			l.trainable = append(l.trainable, n)
		} else {
			l.frozen = append(l.frozen, n)
		}
	}
	return l
}

// modelLayout is a model's weights as names, already split into trainable and frozen, and the
// shapes the model holds them in.
func modelLayout(m *model.Model, trainable, frozen []string) weightLayout {
	l := weightLayout{trainable: trainable, frozen: frozen, shapes: make(map[string]shapes.Shape, len(m.Weights))}
	for n, w := range m.Weights {
		l.shapes[n] = w.Shape()
	}
	return l
}

// float32Shape is the shape of a weight's gradient, optimizer state and master copy.
func (l weightLayout) float32Shape(name string) shapes.Shape {
	return shapes.Make(dtypes.Float32, l.shapes[name].Dimensions...)
}

// masters says, per trainable weight, whether it trains through a float32 master copy.
func (l weightLayout) masters() []bool {
	out := make([]bool, len(l.trainable))
	for i, n := range l.trainable {
		out[i] = needsMaster(l.shapes[n].DType)
	}
	return out
}

// groupMembers returns an update group's weight names and, per member, the dtype of its working
// copy when it trains through a master (InvalidDType otherwise): updateGraph's arguments.
func (l weightLayout) groupMembers(g updateGroup) (names []string, working []dtypes.DType) {
	names, working = make([]string, len(g.members)), make([]dtypes.DType, len(g.members))
	for j, i := range g.members {
		names[j] = l.trainable[i]
		if dt := l.shapes[names[j]].DType; needsMaster(dt) {
			working[j] = dt
		}
	}
	return names, working
}

// microSpecs places a micro-batch graph's inputs (trainable and frozen weights, the accumulated
// gradients unless first, the batch inputs) and outputs (one replicated vector of loss sum, units
// and metric sums — its length is known only once the objective names its metrics — then the
// gradients).
func microSpecs(p Placement, l weightLayout, batch []shapes.Shape, first bool) (in, out []*distributed.ShardingSpec, err error) {
	devices := 1
	if mesh := p.Mesh(); mesh != nil {
		devices = mesh.NumDevices()
	}
	for _, n := range l.trainable {
		in = append(in, p.ParamSpec(l.shapes[n]))
	}
	for _, n := range l.frozen {
		in = append(in, p.ParamSpec(l.shapes[n]))
	}
	var grads []*distributed.ShardingSpec
	for _, n := range l.trainable {
		grads = append(grads, p.GradSpec(l.float32Shape(n)))
	}
	if !first {
		in = append(in, grads...)
	}
	for _, shape := range batch {
		if shape.Rank() == 0 || shape.Dim(0)%devices != 0 {
			return nil, nil, fmt.Errorf("batch input of shape %s: its first (batch) axis must be a multiple of the %d devices so every device gets the same rows",
				shape, devices)
		}
		in = append(in, p.BatchSpec(shape))
	}
	return in, append([]*distributed.ShardingSpec{nil}, grads...), nil
}

// normSpecs places the gradient-norm graph: gradients in, two replicated scalars out.
func normSpecs(p Placement, l weightLayout) (in, out []*distributed.ShardingSpec) {
	for _, n := range l.trainable {
		in = append(in, p.GradSpec(l.float32Shape(n)))
	}
	return append(in, nil), []*distributed.ShardingSpec{nil, nil}
}

// updateSpecs places an update group's graph (see updateGraph): masters live where optimizer
// state does (DeepSpeed keeps them in the optimizer partition) and their rounded working copies
// where parameters do. key names the compiled graph: the specs depend on the shapes, so groups
// share one only when their shapes are equal too.
func updateSpecs(p Placement, l weightLayout, g updateGroup, stateTensors int) (in, out []*distributed.ShardingSpec, key string) {
	var params, grads, copies, states []*distributed.ShardingSpec
	key = "update " + g.key
	for _, i := range g.members {
		n := l.trainable[i]
		shape, f32 := l.shapes[n], l.float32Shape(n)
		key += fmt.Sprint(shape.Dimensions)
		if needsMaster(shape.DType) {
			params = append(params, p.StateSpec(f32))
			copies = append(copies, p.ParamSpec(shape))
		} else {
			params = append(params, p.ParamSpec(shape))
		}
		grads = append(grads, p.GradSpec(f32))
		for range stateTensors {
			states = append(states, p.StateSpec(f32))
		}
	}
	in = append(append(append(append(in, params...), grads...), states...), nil, nil, nil, nil)
	out = append(append(append(out, params...), copies...), states...)
	return in, out, key
}
