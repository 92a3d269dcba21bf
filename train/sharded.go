package train

import (
	"context"
	"fmt"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/distributed"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/core/tensors/dtensor"

	"handbook/model"
)

// Placement says where each tensor of a sharded training step lives on a device mesh, and how a
// batch is split over it. A nil spec means replicated on every device. *zero.Strategy implements
// it for the ZeRO stages. A nil Placement, or one holding a nil pointer (a nil *zero.Strategy),
// means one device.
type Placement interface {
	// Validate reports a placement that cannot run (an unknown stage, no device); trainers call it
	// before anything compiles.
	Validate() error
	// Mesh is the device mesh every graph of the step runs on.
	Mesh() *distributed.DeviceMesh
	// DataParallel is the number of data-parallel replicas a batch's rows are split over: each
	// takes per_device_train_batch_size rows, so a trainer's micro-batch has that many times more
	// (see BatchRows).
	DataParallel() int
	// ParamSpec, GradSpec and StateSpec place a weight of the given shape, its accumulated
	// gradient and each of its optimizer state tensors.
	ParamSpec(shape shapes.Shape) *distributed.ShardingSpec
	GradSpec(shape shapes.Shape) *distributed.ShardingSpec
	StateSpec(shape shapes.Shape) *distributed.ShardingSpec
	// BatchSpec places a batch input ([batch, …]); the batch axis is split over the data axis.
	BatchSpec(shape shapes.Shape) *distributed.ShardingSpec
}

// BatchRows is the rows of one micro-batch when every data-parallel replica takes perDevice rows
// (TrainingArguments' per_device_train_batch_size): perDevice on one device (p nil, or a nil
// pointer), perDevice × p.DataParallel() on a mesh. It validates p first, so a bad placement or
// batch size is an error before anything compiles. Trainers size their batches with it; the
// Engine and ShardedStep take batches as they come (global rows).
func BatchRows(p Placement, perDevice int) (int, error) {
	if perDevice <= 0 {
		return 0, fmt.Errorf("per_device_train_batch_size must be positive, got %d", perDevice)
	}
	if p = OrNil(p); p == nil {
		return perDevice, nil
	}
	if err := p.Validate(); err != nil {
		return 0, fmt.Errorf("placement: %w", err)
	}
	return perDevice * p.DataParallel(), nil
}

// ShardedStep runs the Engine's optimizer step — micro-batch gradients summed, normalized by the
// step's units, global-norm clipping, the Optimizer's update — with parameters, gradients and
// optimizer state placed on a device mesh by a Placement. The graphs are written on logical
// (global) shapes and XLA's SPMD partitioner (Shardy) inserts the collectives, so the numbers are
// those of one device up to summation order. Every tensor it keeps stays on its devices between
// steps; Weights gathers them.
//
// GoMLX's stock trainer compiles updated variables as replicated; here every output carries the
// sharding spec its input had, so a sharded weight stays sharded across steps.
type ShardedStep struct {
	Model     *model.Model
	Objective Objective
	// Adapter, when set, selects the weights the optimizer updates and builds the training graphs
	// on its TrainingDecoder (dropout seeded by Seed), as in Engine; nil trains all.
	Adapter     Adapter
	Seed        uint64
	Optimizer   Optimizer // nil: DefaultAdamW
	MaxGradNorm float64   // ≤ 0 disables clipping
	Placement   Placement
	// InitialState is each trainable weight's optimizer state (in Model.Weights.Names() order of the
	// trainable weights, then Optimizer.StateNames() order) to start from, as a resumed run has;
	// nil starts from zeros.
	InitialState [][]*tensors.Tensor
	// InitialMasters are the float32 master copies of the trainable weights stored in 16 bits
	// (nil entries for float32 weights), as a resumed run has; nil derives them from the weights.
	InitialMasters []*tensors.Tensor

	trainable, frozen []string
	devices           int
	// params[i], frozenW[i], state[i][k], masters[i] and grads[i] hold one tensor per device (the
	// device's shard). masters[i] is nil for float32 weights; masters are placed like optimizer
	// state (DeepSpeed keeps them in the optimizer partition).
	params, frozenW, masters [][]*tensors.Tensor
	state                    [][][]*tensors.Tensor
	grads                    [][]*tensors.Tensor
	peak                     ResidentBytes
	execs                    map[string]*shardedExec
}

type shardedExec struct {
	exec        *Exec
	metricNames []string
}

// ResidentBytes are the bytes each device holds, read from the backend's buffers.
type ResidentBytes struct {
	Params, Grads, OptimizerState []int64 // indexed by device
}

// StepResult is one optimizer step's outcome.
type StepResult struct {
	Loss     float64 // loss sum / units over the step's micro-batches
	GradNorm float64 // before clipping
	Units    float64
	Metrics  map[string]float64 // per unit
}

func (s *ShardedStep) init() error {
	s.trainable, s.frozen, s.params, s.frozenW, s.state, s.grads, s.masters = nil, nil, nil, nil, nil, nil, nil
	if s.Placement = OrNil(s.Placement); s.Placement == nil {
		return fmt.Errorf("sharded step: Placement is nil")
	}
	if err := s.Placement.Validate(); err != nil {
		return fmt.Errorf("sharded step: Placement: %w", err)
	}
	if s.Placement.Mesh() == nil {
		return fmt.Errorf("sharded step: the placement has no device mesh")
	}
	if s.Model == nil || s.Objective == nil {
		return fmt.Errorf("sharded step: Model and Objective are required")
	}
	s.Adapter = OrNil(s.Adapter)
	if s.Optimizer == nil {
		s.Optimizer = DefaultAdamW()
	}
	s.devices = s.Placement.Mesh().NumDevices()
	if have := s.Model.Backend().NumDevices(); have < s.devices {
		return fmt.Errorf("sharded step: the mesh has %d devices but backend %s has %d", s.devices, s.Model.Backend().Name(), have)
	}
	for _, n := range s.Model.Weights.Names() {
		if s.Adapter == nil || s.Adapter.Trainable(n) {
			s.trainable = append(s.trainable, n)
		} else {
			s.frozen = append(s.frozen, n)
		}
	}
	if len(s.trainable) == 0 {
		return fmt.Errorf("sharded step: no trainable weights")
	}
	ns := len(s.Optimizer.StateNames())
	for _, n := range s.trainable {
		w := s.Model.Weights[n]
		shards, err := s.shard(s.Placement.ParamSpec(w.Shape()), w)
		if err != nil {
			return fmt.Errorf("sharded step: weight %s: %w", n, err)
		}
		s.params = append(s.params, shards)
		shape := shapes.Make(dtypes.Float32, w.Shape().Dimensions...)
		var master []*tensors.Tensor
		if needsMaster(w.DType()) {
			var init *tensors.Tensor
			if i := len(s.params) - 1; i < len(s.InitialMasters) {
				init = s.InitialMasters[i]
			}
			if init == nil {
				if init, err = float32Copy(w); err != nil {
					return fmt.Errorf("sharded step: float32 master of %s: %w", n, err)
				}
			}
			if master, err = s.shard(s.Placement.StateSpec(shape), init); err != nil {
				return fmt.Errorf("sharded step: float32 master of %s: %w", n, err)
			}
		}
		s.masters = append(s.masters, master)
		st := make([][]*tensors.Tensor, ns)
		for k := range st {
			init := tensors.FromShape(shape)
			if i := len(s.params) - 1; i < len(s.InitialState) && k < len(s.InitialState[i]) && s.InitialState[i][k] != nil {
				init = s.InitialState[i][k]
			}
			if st[k], err = s.shard(s.Placement.StateSpec(shape), init); err != nil {
				return fmt.Errorf("sharded step: optimizer state of %s: %w", n, err)
			}
		}
		s.state = append(s.state, st)
	}
	for _, n := range s.frozen {
		w := s.Model.Weights[n]
		shards, err := s.shard(s.Placement.ParamSpec(w.Shape()), w)
		if err != nil {
			return fmt.Errorf("sharded step: frozen weight %s: %w", n, err)
		}
		s.frozenW = append(s.frozenW, shards)
	}
	s.execs = map[string]*shardedExec{}
	return nil
}

// shard splits a host tensor by spec (nil: replicated) and places shard d on device d.
func (s *ShardedStep) shard(spec *distributed.ShardingSpec, t *tensors.Tensor) ([]*tensors.Tensor, error) {
	if spec == nil {
		spec = distributed.NewReplicatedShardingSpec(s.Placement.Mesh())
	}
	dt, err := dtensor.ShardTensor(spec, t)
	if err != nil {
		return nil, err
	}
	shards := dt.Shards()
	backend := s.Model.Backend()
	for d, sh := range shards {
		if err := sh.MaterializeOnDevice(backend, false, compute.DeviceNum(d)); err != nil {
			return nil, fmt.Errorf("placing shard %d: %w", d, err)
		}
	}
	return shards, nil
}

// Step runs one optimizer step over micro-batches (gradient accumulation) at the 1-based step
// count and learning rate lr.
func (s *ShardedStep) Step(ctx context.Context, micro []map[string]*tensors.Tensor, step int, lr float64) (StepResult, error) {
	if s.execs == nil {
		if err := s.init(); err != nil {
			return StepResult{}, err
		}
	}
	if len(micro) == 0 {
		return StepResult{}, fmt.Errorf("sharded step %d: no micro-batch", step)
	}
	res := StepResult{Metrics: map[string]float64{}}
	var lossSum float64
	for i, batch := range micro {
		if err := ctx.Err(); err != nil {
			return StepResult{}, fmt.Errorf("sharded step %d: %w", step, err)
		}
		out, names, err := s.runMicro(batch)
		if err != nil {
			return StepResult{}, fmt.Errorf("sharded step %d, micro-batch %d: %w", step, i, err)
		}
		lossSum += float64(out[0])
		res.Units += float64(out[1])
		for j, n := range names {
			res.Metrics[n] += float64(out[2+j])
		}
	}
	if res.Units == 0 {
		return StepResult{}, fmt.Errorf("sharded step %d: no trainable unit in %d micro-batch(es)", step, len(micro))
	}
	s.recordPeak()
	norm, err := s.apply(step, lr, res.Units)
	if err != nil {
		return StepResult{}, fmt.Errorf("sharded step %d: %w", step, err)
	}
	res.Loss, res.GradNorm = lossSum/res.Units, norm
	for k := range res.Metrics {
		res.Metrics[k] /= res.Units
	}
	return res, nil
}

// layout is the step's weights as names and shapes.
func (s *ShardedStep) layout() weightLayout {
	return modelLayout(s.Model, s.trainable, s.frozen)
}

// exec compiles fn once per key on the mesh with the given input and output specs.
func (s *ShardedStep) exec(key string, in, out []*distributed.ShardingSpec, fn func(c *shardedExec) func([]*Node) []*Node) (*shardedExec, error) {
	if c, ok := s.execs[key]; ok {
		return c, nil
	}
	c := &shardedExec{}
	e, err := NewExec(s.Model.Backend(), fn(c))
	if err != nil {
		return nil, err
	}
	if s.devices > 1 {
		mesh := s.Placement.Mesh()
		// A nil spec would leave the tensor to Shardy's propagation, which may shard a replicated
		// weight like its optimizer state: every input and output gets an explicit spec.
		e = e.AutoSharding(mesh).WithInputShardingSpecs(explicit(mesh, in)...).WithOutputShardingSpecs(explicit(mesh, out)...)
	}
	c.exec = e
	s.execs[key] = c
	return c, nil
}

// explicit replaces nil (replicated) specs by an explicit replicated spec.
func explicit(mesh *distributed.DeviceMesh, specs []*distributed.ShardingSpec) []*distributed.ShardingSpec {
	out := make([]*distributed.ShardingSpec, len(specs))
	for i, sp := range specs {
		if sp == nil {
			sp = distributed.NewReplicatedShardingSpec(mesh)
		}
		out[i] = sp
	}
	return out
}

// call runs a compiled graph: perDevice(d) lists device d's arguments in graph order. It returns
// the outputs per device: out[d][k].
func (s *ShardedStep) call(c *shardedExec, perDevice func(d int) ([]any, error)) ([][]*tensors.Tensor, error) {
	var args []any
	for d := 0; d < s.devices; d++ {
		a, err := perDevice(d)
		if err != nil {
			return nil, err
		}
		args = append(args, a...)
	}
	flat, err := c.exec.Exec(args...)
	if err != nil {
		return nil, err
	}
	k := len(flat) / s.devices
	out := make([][]*tensors.Tensor, s.devices)
	for d := range out {
		out[d] = flat[d*k : (d+1)*k]
	}
	return out, nil
}

// runMicro adds one micro-batch's gradients to s.grads and returns [loss sum, units, metric sums…]
// with the metric names.
func (s *ShardedStep) runMicro(batch map[string]*tensors.Tensor) ([]float32, []string, error) {
	names := sortedNames(batch)
	nt := len(s.trainable)
	first := s.grads == nil
	batchShapes := make([]shapes.Shape, len(names))
	for i, n := range names {
		batchShapes[i] = batch[n].Shape()
	}
	in, out, err := microSpecs(s.Placement, s.layout(), batchShapes, first)
	if err != nil {
		return nil, nil, err
	}
	batchShards := make([][]*tensors.Tensor, len(names))
	for i, n := range names {
		if batchShards[i], err = s.shard(in[len(in)-len(names)+i], batch[n]); err != nil {
			return nil, nil, fmt.Errorf("batch input %s: %w", n, err)
		}
	}
	key := fmt.Sprintf("micro first=%v %s", first, strings.Join(names, ","))
	c, err := s.exec(key, in, out, func(c *shardedExec) func([]*Node) []*Node {
		return func(inputs []*Node) []*Node {
			sum, count, metrics, g := microStep(s.Model.Decoder, s.Objective, s.Adapter, s.Seed, s.trainable, s.frozen, names, first, inputs)
			lc := &compiled{}
			scalars := Stack(lossOutputs(lc, sum, count, metrics), 0)
			c.metricNames = lc.metricNames
			return append([]*Node{scalars}, g...)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	backend := s.Model.Backend()
	outs, err := s.call(c, func(d int) ([]any, error) {
		var a []any
		for _, w := range s.params {
			a = append(a, w[d])
		}
		for _, w := range s.frozenW {
			a = append(a, w[d])
		}
		if !first {
			for _, g := range s.grads {
				dg, err := DonateTensorBuffer(g[d], backend, compute.DeviceNum(d))
				if err != nil {
					return nil, err
				}
				a = append(a, dg)
			}
		}
		for _, b := range batchShards {
			a = append(a, b[d])
		}
		return a, nil
	})
	if err != nil {
		return nil, nil, err
	}
	s.grads = make([][]*tensors.Tensor, nt)
	for i := range s.grads {
		s.grads[i] = make([]*tensors.Tensor, s.devices)
		for d := 0; d < s.devices; d++ {
			s.grads[i][d] = outs[d][1+i]
		}
	}
	scalars, err := tensors.CopyFlatData[float32](outs[0][0])
	if err != nil {
		return nil, nil, err
	}
	return scalars, c.metricNames, nil
}

func (s *ShardedStep) apply(step int, lr, units float64) (float64, error) {
	opt, maxNorm := s.Optimizer, s.MaxGradNorm
	ns := len(opt.StateNames())
	backend := s.Model.Backend()
	l := s.layout()
	normIn, normOutSpecs := normSpecs(s.Placement, l)
	normC, err := s.exec("grad_norm", normIn, normOutSpecs, func(*shardedExec) func([]*Node) []*Node {
		return gradNormGraph(maxNorm, len(s.trainable))
	})
	if err != nil {
		return 0, err
	}
	// Host scalars are made per device: a tensor is placed on the first device that reads it.
	normOut, err := s.call(normC, func(d int) ([]any, error) {
		var a []any
		for _, g := range s.grads {
			a = append(a, g[d])
		}
		return append(a, tensors.FromScalar(float32(units))), nil
	})
	if err != nil {
		return 0, err
	}
	for _, grp := range updateGroups(s.trainable, l.masters()) {
		names, working := l.groupMembers(grp)
		in, out, key := updateSpecs(s.Placement, l, grp, ns)
		c, err := s.exec(key, in, out, func(*shardedExec) func([]*Node) []*Node {
			return updateGraph(opt, names, working, maxNorm > 0)
		})
		if err != nil {
			return 0, err
		}
		outs, err := s.call(c, func(d int) ([]any, error) {
			var ts []*tensors.Tensor
			for _, i := range grp.members {
				if s.masters[i] != nil {
					ts = append(ts, s.masters[i][d])
				} else {
					ts = append(ts, s.params[i][d])
				}
			}
			for _, i := range grp.members {
				ts = append(ts, s.grads[i][d])
			}
			for _, i := range grp.members {
				for _, k := range s.state[i] {
					ts = append(ts, k[d])
				}
			}
			a := make([]any, 0, len(ts)+4)
			for _, t := range ts {
				dt, err := DonateTensorBuffer(t, backend, compute.DeviceNum(d))
				if err != nil {
					return nil, err
				}
				a = append(a, dt)
			}
			return append(a, tensors.FromScalar(float32(step)), tensors.FromScalar(float32(lr)), tensors.FromScalar(float32(units)), normOut[d][1]), nil
		})
		if err != nil {
			return 0, err
		}
		for d := 0; d < s.devices; d++ {
			newStates := outs[d][len(grp.members):]
			for j, i := range grp.members {
				if s.masters[i] == nil {
					s.params[i][d] = outs[d][j]
					continue
				}
				s.masters[i][d] = outs[d][j]
				s.params[i][d], newStates = newStates[0], newStates[1:]
			}
			for j, i := range grp.members {
				for k := 0; k < ns; k++ {
					s.state[i][k][d] = newStates[j*ns+k]
				}
			}
		}
	}
	s.grads = nil
	return float64(tensors.ToScalar[float32](normOut[0][0])), nil
}

// recordPeak reads the bytes each device holds for parameters, accumulated gradients and
// optimizer state from the backend's buffers, at the moment all three are alive (after the last
// micro-batch, before the update), and keeps the largest seen.
func (s *ShardedStep) recordPeak() {
	r := s.residentNow()
	if s.peak.Params == nil {
		s.peak = r
		return
	}
	for d := range r.Params {
		s.peak.Params[d] = max(s.peak.Params[d], r.Params[d])
		s.peak.Grads[d] = max(s.peak.Grads[d], r.Grads[d])
		s.peak.OptimizerState[d] = max(s.peak.OptimizerState[d], r.OptimizerState[d])
	}
}

func (s *ShardedStep) residentNow() ResidentBytes {
	backend := s.Model.Backend()
	r := ResidentBytes{Params: make([]int64, s.devices), Grads: make([]int64, s.devices), OptimizerState: make([]int64, s.devices)}
	bytesOn := func(t *tensors.Tensor, d int) int64 {
		buf, err := t.Buffer(backend, compute.DeviceNum(d))
		if err != nil {
			return 0
		}
		shape, err := buf.Shape()
		if err != nil {
			return 0
		}
		return int64(shape.Memory())
	}
	for d := 0; d < s.devices; d++ {
		for _, w := range s.params {
			r.Params[d] += bytesOn(w[d], d)
		}
		for _, w := range s.frozenW {
			r.Params[d] += bytesOn(w[d], d)
		}
		for _, g := range s.grads {
			r.Grads[d] += bytesOn(g[d], d)
		}
		for _, st := range s.state {
			for _, k := range st {
				r.OptimizerState[d] += bytesOn(k[d], d)
			}
		}
		for _, m := range s.masters {
			if m != nil {
				r.OptimizerState[d] += bytesOn(m[d], d)
			}
		}
	}
	return r
}

// Resident returns the largest per-device bytes of parameters, gradients and optimizer state seen
// at a step's peak (all three alive), read from the backend's buffers.
func (s *ShardedStep) Resident() ResidentBytes { return s.peak }

// Weights gathers the current weights (trainable and frozen) into host tensors by name.
func (s *ShardedStep) Weights() (map[string]*tensors.Tensor, error) {
	out := map[string]*tensors.Tensor{}
	if s.execs == nil {
		return nil, fmt.Errorf("sharded step: no step has run")
	}
	gather := func(names []string, shards [][]*tensors.Tensor) error {
		for i, n := range names {
			spec := s.Placement.ParamSpec(s.Model.Weights[n].Shape())
			if spec == nil {
				spec = distributed.NewReplicatedShardingSpec(s.Placement.Mesh())
			}
			dt, err := dtensor.NewTensor(spec, shards[i])
			if err != nil {
				return fmt.Errorf("weight %s: %w", n, err)
			}
			t, err := dt.Merge()
			if err != nil {
				return fmt.Errorf("weight %s: %w", n, err)
			}
			out[n] = t
		}
		return nil
	}
	if err := gather(s.trainable, s.params); err != nil {
		return nil, err
	}
	if err := gather(s.frozen, s.frozenW); err != nil {
		return nil, err
	}
	return out, nil
}

// Masters gathers the float32 master copies into host tensors, per trainable weight (in
// Model.Weights.Names() order), nil for weights stored in float32.
func (s *ShardedStep) Masters() ([]*tensors.Tensor, error) {
	if s.execs == nil {
		return nil, fmt.Errorf("sharded step: no step has run")
	}
	out := make([]*tensors.Tensor, len(s.trainable))
	for i, n := range s.trainable {
		if s.masters[i] == nil {
			continue
		}
		spec := s.Placement.StateSpec(shapes.Make(dtypes.Float32, s.Model.Weights[n].Shape().Dimensions...))
		if spec == nil {
			spec = distributed.NewReplicatedShardingSpec(s.Placement.Mesh())
		}
		dt, err := dtensor.NewTensor(spec, s.masters[i])
		if err != nil {
			return nil, fmt.Errorf("float32 master of %s: %w", n, err)
		}
		if out[i], err = dt.Merge(); err != nil {
			return nil, fmt.Errorf("float32 master of %s: %w", n, err)
		}
	}
	return out, nil
}

// OptimizerState gathers the optimizer state into host tensors, per trainable weight (in
// Model.Weights.Names() order) and state name.
func (s *ShardedStep) OptimizerState() ([][]*tensors.Tensor, error) {
	if s.execs == nil {
		return nil, fmt.Errorf("sharded step: no step has run")
	}
	out := make([][]*tensors.Tensor, len(s.trainable))
	for i, n := range s.trainable {
		shape := shapes.Make(dtypes.Float32, s.Model.Weights[n].Shape().Dimensions...)
		spec := s.Placement.StateSpec(shape)
		if spec == nil {
			spec = distributed.NewReplicatedShardingSpec(s.Placement.Mesh())
		}
		for k, shards := range s.state[i] {
			dt, err := dtensor.NewTensor(spec, shards)
			if err != nil {
				return nil, fmt.Errorf("optimizer state %d of %s: %w", k, n, err)
			}
			t, err := dt.Merge()
			if err != nil {
				return nil, fmt.Errorf("optimizer state %d of %s: %w", k, n, err)
			}
			out[i] = append(out[i], t)
		}
	}
	return out, nil
}

// initSharded starts the Engine's sharded step when a Placement is set.
func (e *Engine) initSharded() error {
	e.sharded = nil
	if OrNil(e.Placement) == nil {
		return nil
	}
	e.sharded = &ShardedStep{Model: e.Model, Objective: e.Objective, Adapter: e.adapter(), Seed: e.Args.Seed,
		Optimizer: e.Args.Optimizer, MaxGradNorm: e.Args.MaxGradNorm, Placement: e.Placement, InitialState: e.optState,
		InitialMasters: e.masters}
	return e.sharded.init()
}

// shardedOptimizerStep is optimizerStep on the device mesh: the same micro-batches, in the same
// order, through the ShardedStep.
func (e *Engine) shardedOptimizerStep(train Batches, step int, lr float64) (loss float64, metrics map[string]float64, units, tokens float64, err error) {
	micro := make([]map[string]*tensors.Tensor, 0, e.Args.GradientAccumulationSteps)
	for range e.Args.GradientAccumulationSteps {
		batch, err := train.Batch(e.state.NextEpoch, e.state.NextIndex)
		if err != nil {
			return 0, nil, 0, 0, err
		}
		e.state.NextIndex++
		if e.state.NextIndex >= train.Len() {
			e.state.NextEpoch++
			e.state.NextIndex = 0
		}
		seen, err := inputTokens(batch)
		if err != nil {
			return 0, nil, 0, 0, err
		}
		tokens += seen
		micro = append(micro, batch)
	}
	res, err := e.sharded.Step(context.Background(), micro, step, lr)
	if err != nil {
		return 0, nil, 0, 0, err
	}
	res.Metrics["grad_norm"] = res.GradNorm
	return res.Loss, res.Metrics, res.Units, tokens, nil
}

// syncSharded gathers the sharded weights and optimizer state into Model.Weights and the
// Engine's state, for evaluation, checkpoints and the caller after Train.
func (e *Engine) syncSharded() error {
	if e.sharded == nil || e.sharded.execs == nil || e.sharded.params == nil {
		return nil
	}
	w, err := e.sharded.Weights()
	if err != nil {
		return err
	}
	st, err := e.sharded.OptimizerState()
	if err != nil {
		return err
	}
	masters, err := e.sharded.Masters()
	if err != nil {
		return err
	}
	for n, t := range w {
		e.Model.Weights[n] = t
	}
	e.optState, e.masters = st, masters
	return nil
}

// Close releases the compiled graphs.
func (s *ShardedStep) Close() {
	for _, c := range s.execs {
		c.exec.Finalize()
	}
	s.execs = nil
}
