package train

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/distributed"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified

	"handbook/backend"
	"handbook/model"
)

// MemoryPlan is a training step described by shapes alone: what StepMemory compiles.
type MemoryPlan struct {
	Decoder   *model.Decoder
	Objective Objective
	// Weights are the model's weights (adapter and quantized tensors included) by name, in their
	// storage dtype; trainable 16-bit weights get float32 masters as in Engine.
	Weights map[string]shapes.Shape
	// Adapter, when set, is what trains, as in Engine: it selects the trainable weights and the
	// micro-batch graph runs its TrainingDecoder (a lora.Plan adapter needs no weights). nil: a
	// full fine-tune.
	Adapter   Adapter
	Optimizer Optimizer // nil: DefaultAdamW
	// MaxGradNorm > 0 compiles clipping (it changes no buffer size).
	MaxGradNorm float64
	// Placement spreads the step over its mesh's devices (a ZeRO strategy); nil is one device.
	Placement Placement
	// Batch is one micro-batch's inputs (global shapes: every device's rows).
	Batch map[string]shapes.Shape
	// GradientAccumulation > 1 also compiles the micro-batch graph that adds to the accumulated
	// gradients.
	GradientAccumulation int
}

// GraphMemory is XLA's accounting of one of the step's compiled graphs, per device.
type GraphMemory struct {
	Name string
	backend.CompiledMemory
	// Peak is the device's bytes while this graph runs: the model states it does not take as
	// arguments, plus the graph's own Peak (arguments, outputs and temporaries).
	Peak int64
}

// StepMemory is a training step's device memory as XLA compiled it, per device (device 0; the
// ZeRO placements split evenly).
type StepMemory struct {
	Devices int
	// Model states kept between the step's graphs: the weights as the decoder reads them (trainable
	// working copies and frozen weights), float32 masters, optimizer state, and the float32
	// gradient sums (alive from the last micro-batch to the update).
	Weights, Masters, OptimizerState, Gradients int64
	Graphs                                      []GraphMemory
	// Peak is the largest GraphMemory.Peak: the step's peak device memory.
	Peak int64
}

// ModelStates is the bytes of weights, masters, optimizer state and gradients.
func (m StepMemory) ModelStates() int64 {
	return m.Weights + m.Masters + m.OptimizerState + m.Gradients
}

// CompileStepMemory compiles the graphs of one optimizer step of plan — the micro-batch
// forward/backward (and its accumulating variant), the gradient norm and every distinct update
// group — on backend b (an XLA backend with at least the placement's devices) from shapes alone:
// no weight is allocated, read or transferred. It returns XLA's memory accounting of each graph
// and the step's peak, the bytes the Engine (or its ShardedStep) would hold on a device.
//
// XLA does not alias donated inputs with outputs here (go-xla compiles no input/output aliases;
// every graph's Aliased is 0), so a graph's outputs are new buffers while its inputs are alive:
// that is why the update runs per decoder layer (see updateGroup).
func CompileStepMemory(b compute.Backend, plan MemoryPlan) (StepMemory, error) {
	if plan.Decoder == nil || plan.Objective == nil || len(plan.Weights) == 0 || len(plan.Batch) == 0 {
		return StepMemory{}, fmt.Errorf("step memory: Decoder, Objective, Weights and Batch are required")
	}
	opt := plan.Optimizer
	if opt == nil {
		opt = DefaultAdamW()
	}
	ns := len(opt.StateNames())
	adapter := OrNil(plan.Adapter)
	var trainable func(string) bool
	if adapter != nil {
		trainable = adapter.Trainable
	}
	l := newWeightLayout(plan.Weights, trainable)
	if len(l.trainable) == 0 {
		return StepMemory{}, fmt.Errorf("step memory: no trainable weights")
	}
	c := memoryCompiler{b: b, placement: OrNil(plan.Placement), devices: 1}
	if c.placement != nil {
		if err := c.placement.Validate(); err != nil {
			return StepMemory{}, fmt.Errorf("step memory: Placement: %w", err)
		}
		c.devices = c.placement.Mesh().NumDevices()
	} else {
		c.placement = onDevice{}
	}
	p := c.placement
	res := StepMemory{Devices: c.devices}
	masters := l.masters()
	for _, n := range append(append([]string{}, l.trainable...), l.frozen...) {
		res.Weights += c.bytes(p.ParamSpec(l.shapes[n]), l.shapes[n])
	}
	for i, n := range l.trainable {
		f32 := l.float32Shape(n)
		if masters[i] {
			res.Masters += c.bytes(p.StateSpec(f32), f32)
		}
		res.OptimizerState += int64(ns) * c.bytes(p.StateSpec(f32), f32)
		res.Gradients += c.bytes(p.GradSpec(f32), f32)
	}

	names := sortedNames(plan.Batch)
	batch := make([]shapes.Shape, len(names))
	for i, n := range names {
		batch[i] = plan.Batch[n]
	}
	firsts := []bool{true}
	if plan.GradientAccumulation > 1 {
		firsts = append(firsts, false)
	}
	scalar := shapes.Make(dtypes.Float32)
	for _, first := range firsts {
		in, out, err := microSpecs(p, l, batch, first)
		if err != nil {
			return StepMemory{}, fmt.Errorf("step memory: %w", err)
		}
		inShapes := c.weightShapes(l, l.trainable, l.frozen)
		if !first {
			inShapes = append(inShapes, c.float32Shapes(l)...)
		}
		inShapes = append(inShapes, batch...)
		name := "micro-batch"
		if !first {
			name += " (accumulating)"
		}
		mem, err := c.compile(name, in, out, inShapes, func(inputs []*Node) []*Node {
			sum, count, metrics, g := microStep(plan.Decoder, plan.Objective, adapter, 0, l.trainable, l.frozen, names, first, inputs)
			scalars := Stack(lossOutputs(&compiled{}, sum, count, metrics), 0)
			return append([]*Node{scalars}, g...)
		})
		if err != nil {
			return StepMemory{}, err
		}
		// The masters and optimizer state are not arguments; the accumulated gradients are when
		// accumulating (the first micro-batch creates them).
		mem.Peak = res.Masters + res.OptimizerState + mem.CompiledMemory.Peak()
		res.Graphs = append(res.Graphs, mem)
	}

	in, out := normSpecs(p, l)
	mem, err := c.compile("gradient norm", in, out, append(c.float32Shapes(l), scalar), gradNormGraph(plan.MaxGradNorm, len(l.trainable)))
	if err != nil {
		return StepMemory{}, err
	}
	mem.Peak = res.ModelStates() + mem.Transient()
	res.Graphs = append(res.Graphs, mem)

	seen := map[string]bool{}
	for _, grp := range updateGroups(l.trainable, masters) {
		in, out, key := updateSpecs(p, l, grp, ns)
		if seen[key] {
			continue
		}
		seen[key] = true
		groupNames, working := l.groupMembers(grp)
		var params, grads, states []shapes.Shape
		for j, n := range groupNames {
			f32 := l.float32Shape(n)
			if working[j] != dtypes.InvalidDType {
				params = append(params, f32)
			} else {
				params = append(params, l.shapes[n])
			}
			grads = append(grads, f32)
			for range ns {
				states = append(states, f32)
			}
		}
		inShapes := append(append(append(append([]shapes.Shape{}, params...), grads...), states...), scalar, scalar, scalar, scalar)
		label := "update " + groupNames[0]
		if strings.HasPrefix(groupNames[0], "model.layers.") {
			label = "update (one decoder layer)"
		}
		mem, err := c.compile(label, in, out, inShapes, updateGraph(opt, groupNames, working, plan.MaxGradNorm > 0))
		if err != nil {
			return StepMemory{}, err
		}
		// All model states are alive; the group's old ones are arguments, its new ones outputs.
		mem.Peak = res.ModelStates() + mem.Transient()
		res.Graphs = append(res.Graphs, mem)
	}
	for _, g := range res.Graphs {
		res.Peak = max(res.Peak, g.Peak)
	}
	return res, nil
}

// memoryCompiler compiles graphs from shapes on a backend, placed like the step's graphs.
type memoryCompiler struct {
	b         compute.Backend
	placement Placement
	devices   int
}

// bytes is the size of one device's shard of a tensor placed by spec (nil: replicated).
func (c memoryCompiler) bytes(spec *distributed.ShardingSpec, shape shapes.Shape) int64 {
	if spec == nil || c.devices == 1 {
		return int64(shape.Memory())
	}
	return int64(spec.ShardShape(shape).Memory())
}

// weightShapes lists the storage shapes of the named weights, in order.
func (c memoryCompiler) weightShapes(l weightLayout, lists ...[]string) []shapes.Shape {
	var out []shapes.Shape
	for _, names := range lists {
		for _, n := range names {
			out = append(out, l.shapes[n])
		}
	}
	return out
}

// float32Shapes lists the trainable weights' gradient shapes.
func (c memoryCompiler) float32Shapes(l weightLayout) []shapes.Shape {
	out := make([]shapes.Shape, len(l.trainable))
	for i, n := range l.trainable {
		out[i] = l.float32Shape(n)
	}
	return out
}

// compile builds fn on logical input shapes placed by in/out (one device: no placement) and
// returns XLA's accounting of it.
func (c memoryCompiler) compile(name string, in, out []*distributed.ShardingSpec, logical []shapes.Shape, fn func([]*Node) []*Node) (GraphMemory, error) {
	exec, err := NewExec(c.b, fn)
	if err != nil {
		return GraphMemory{}, fmt.Errorf("step memory: %s: %w", name, err)
	}
	defer exec.Finalize()
	argShapes := logical
	if c.devices > 1 {
		mesh := c.placement.Mesh()
		exec = exec.AutoSharding(mesh).WithInputShardingSpecs(explicit(mesh, in)...).WithOutputShardingSpecs(explicit(mesh, out)...)
		// Exec.Compile takes every device's shard shapes, device after device.
		perDevice := make([]shapes.Shape, len(logical))
		for i, s := range logical {
			perDevice[i] = s
			if in[i] != nil {
				perDevice[i] = in[i].ShardShape(s)
			}
		}
		argShapes = nil
		for range c.devices {
			argShapes = append(argShapes, perDevice...)
		}
	}
	g, err := exec.Compile(argShapes...)
	if err != nil {
		return GraphMemory{}, fmt.Errorf("step memory: compiling %s: %w", name, err)
	}
	m, err := backend.CompiledMemoryOf(g)
	if err != nil {
		return GraphMemory{}, fmt.Errorf("step memory: %s: %w", name, err)
	}
	return GraphMemory{Name: name, CompiledMemory: m}, nil
}

// onDevice is the one-device placement: everything replicated (nil specs).
type onDevice struct{}

func (onDevice) Validate() error                                  { return nil }
func (onDevice) DataParallel() int                                { return 1 }
func (onDevice) Mesh() *distributed.DeviceMesh                    { return nil }
func (onDevice) ParamSpec(shapes.Shape) *distributed.ShardingSpec { return nil }
func (onDevice) GradSpec(shapes.Shape) *distributed.ShardingSpec  { return nil }
func (onDevice) StateSpec(shapes.Shape) *distributed.ShardingSpec { return nil }
func (onDevice) BatchSpec(shapes.Shape) *distributed.ShardingSpec { return nil }

// CompileGraphMemory compiles fn on one device of b from its input shapes alone and returns XLA's
// accounting of it (for graphs a trainer runs beside the step, such as DPO's reference scorer).
func CompileGraphMemory(b compute.Backend, name string, inputs []shapes.Shape, fn func([]*Node) []*Node) (GraphMemory, error) {
	m, err := memoryCompiler{b: b, placement: onDevice{}, devices: 1}.compile(name, nil, nil, inputs, fn)
	if err != nil {
		return GraphMemory{}, err
	}
	m.Peak = m.CompiledMemory.Peak()
	return m, nil
}
