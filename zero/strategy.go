package zero

import (
	"fmt"

	"github.com/gomlx/compute/distributed"
	"github.com/gomlx/compute/shapes"
)

// Stage is a ZeRO stage: what is partitioned over the data-parallel devices.
type Stage int

const (
	// Stage0 is plain data parallelism: every device holds all parameters, gradients and optimizer
	// state; gradients are all-reduced.
	Stage0 Stage = 0
	// Stage1 partitions the optimizer state.
	Stage1 Stage = 1
	// Stage2 also partitions the gradients (reduce-scattered instead of all-reduced).
	Stage2 Stage = 2
	// Stage3 also partitions the parameters, gathered where they are used.
	Stage3 Stage = 3
)

// DataAxis is the name of the mesh axis the batch and the ZeRO partitions are split over.
const DataAxis = "data"

// Strategy places a training run's tensors over Devices devices for a ZeRO stage. It implements
// train.Placement: the batch is split on its first axis over every device; a partitioned tensor is
// split on its first axis whose size the partition group divides, and stays replicated when none
// does (norm weights of odd sizes, scalars), which is what keeps a partition's bytes near 1/N of
// the whole.
type Strategy struct {
	Stage   Stage
	Devices int // all devices of the job (accelerate's num_processes)
	// Nodes is how many hosts the devices span (accelerate's num_machines); 0 or 1 is one host.
	// With several, the mesh is ("node", "local"), Nodes × Devices/Nodes (see hosts.go).
	Nodes int
	// Hybrid partitions within a node and replicates across nodes (FSDP's HYBRID_SHARD and
	// _HYBRID_SHARD_ZERO2); otherwise a partition spans every device (DeepSpeed's default).
	Hybrid bool

	mesh *distributed.DeviceMesh
}

// Validate implements train.Placement: it reports a nil strategy, a stage outside 0–3 or a device
// count below 1.
func (s *Strategy) Validate() error {
	if s == nil {
		return fmt.Errorf("zero: the strategy is a nil *zero.Strategy")
	}
	if s.Stage < Stage0 || s.Stage > Stage3 {
		return fmt.Errorf("zero: stage %d is not a ZeRO stage (0, 1, 2 or 3)", int(s.Stage))
	}
	if s.Devices < 1 {
		return fmt.Errorf("zero: the device count must be at least 1, got %d", s.Devices)
	}
	return s.validateNodes()
}

// CheckBatch reports a global batch size that the device count does not divide: every device
// must get the same number of rows.
func (s *Strategy) CheckBatch(batchSize int) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if batchSize%s.Devices != 0 {
		return fmt.Errorf("zero: a batch of %d rows cannot be split evenly over %d devices; use a batch size that is a multiple of %d",
			batchSize, s.Devices, s.Devices)
	}
	return nil
}

// DataParallel implements train.Placement: every device is a data-parallel replica (the batch is
// split over all of them, on one host or several), so a trainer's micro-batch is
// PerDeviceTrainBatchSize × Devices rows.
func (s *Strategy) DataParallel() int {
	if s.Validate() != nil {
		return 1
	}
	return s.Devices
}

// Mesh is the device mesh of all the strategy's devices: one axis ("data") on one host,
// ("node", "local") over several; nil when the strategy is invalid.
func (s *Strategy) Mesh() *distributed.DeviceMesh {
	if s.Validate() != nil {
		return nil
	}
	if s.mesh != nil {
		return s.mesh
	}
	sizes, names := s.meshAxes()
	m, err := distributed.NewDeviceMesh(sizes, names)
	if err != nil {
		return nil
	}
	s.mesh = m
	return m
}

// ParamSpec implements train.Placement: parameters are partitioned at stage 3.
func (s *Strategy) ParamSpec(shape shapes.Shape) *distributed.ShardingSpec {
	return s.partitioned(s.Stage >= Stage3, shape)
}

// GradSpec implements train.Placement: gradients are partitioned from stage 2.
func (s *Strategy) GradSpec(shape shapes.Shape) *distributed.ShardingSpec {
	return s.partitioned(s.Stage >= Stage2, shape)
}

// StateSpec implements train.Placement: optimizer state is partitioned from stage 1.
func (s *Strategy) StateSpec(shape shapes.Shape) *distributed.ShardingSpec {
	return s.partitioned(s.Stage >= Stage1, shape)
}

// BatchSpec implements train.Placement: the first (batch) axis is split over every device.
func (s *Strategy) BatchSpec(shape shapes.Shape) *distributed.ShardingSpec {
	if s.Devices <= 1 || shape.Rank() == 0 || shape.Dim(0)%s.Devices != 0 {
		return nil
	}
	_, names := s.meshAxes()
	return s.splitAxis(0, shape.Rank(), names)
}

// PartitionAxis is the axis a partitioned tensor of this shape is split on, or -1 when the
// partition group's size (every device, or a node's devices when Hybrid) divides none of its axes
// (the tensor then stays replicated).
func (s *Strategy) PartitionAxis(shape shapes.Shape) int {
	group, _ := s.partitionGroup()
	if group <= 1 {
		return -1
	}
	for axis, dim := range shape.Dimensions {
		if dim%group == 0 {
			return axis
		}
	}
	return -1
}

func (s *Strategy) partitioned(on bool, shape shapes.Shape) *distributed.ShardingSpec {
	if !on {
		return nil
	}
	axis := s.PartitionAxis(shape)
	if axis < 0 {
		return nil
	}
	_, meshAxes := s.partitionGroup()
	return s.splitAxis(axis, shape.Rank(), meshAxes)
}

// splitAxis splits a tensor's axis over the given mesh axes and replicates it over the others.
func (s *Strategy) splitAxis(axis, rank int, meshAxes []string) *distributed.ShardingSpec {
	mesh := s.Mesh()
	if mesh == nil {
		return nil
	}
	axes := make([]distributed.AxisSpec, rank)
	axes[axis] = meshAxes
	spec, err := distributed.NewShardingSpec(mesh, axes...)
	if err != nil {
		return nil
	}
	return spec
}
