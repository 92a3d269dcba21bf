package zero

import "fmt"

// Mesh axes of a strategy over several hosts: the mesh's devices are ordered node-major (device
// n·L + l is device l of node n, as PJRT numbers the devices of a multi-process client), so
// splitting the batch over ("node", "local") gives host n the rows [n·B/N, (n+1)·B/N) of a global
// batch of B rows.
const (
	NodeAxis  = "node"
	LocalAxis = "local"
)

// validateNodes checks the host count against the devices.
func (s *Strategy) validateNodes() error {
	if s.Nodes < 0 {
		return fmt.Errorf("zero: the node count must not be negative, got %d", s.Nodes)
	}
	if s.Nodes > 1 && s.Devices%s.Nodes != 0 {
		return fmt.Errorf("zero: %d devices cannot be spread evenly over %d nodes; every node must bring the same number of devices",
			s.Devices, s.Nodes)
	}
	return nil
}

// meshAxes are the mesh's axis sizes and names: ("data") on one host, ("node", "local") over
// several.
func (s *Strategy) meshAxes() ([]int, []string) {
	if s.Nodes > 1 {
		return []int{s.Nodes, s.Devices / s.Nodes}, []string{NodeAxis, LocalAxis}
	}
	return []int{s.Devices}, []string{DataAxis}
}

// partitionGroup is how many devices share one copy of a partitioned tensor, and the mesh axes
// its partitions are split over: every device (DeepSpeed ZeRO, FSDP FULL_SHARD), or a node's
// devices when Hybrid (replicated across nodes, so only the gradient all-reduce crosses them).
func (s *Strategy) partitionGroup() (int, []string) {
	if s.Hybrid && s.Nodes > 1 {
		return s.Devices / s.Nodes, []string{LocalAxis}
	}
	_, names := s.meshAxes()
	return s.Devices, names
}
