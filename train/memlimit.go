package train

import (
	"math"
	"runtime"
	"runtime/debug"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
)

// A soft memory limit for the Go backend. Its buffers live in the Go heap, and freed ones wait in
// per-size pools (sync.Pool) that survive a garbage collection and serve only requests of their
// size class. With the default GOGC a training step's heap settles at the model state plus the
// sum over size classes of each class's largest use: 7.2 GiB RSS for SmolLM2-135M's full
// fine-tune where 4.4 GiB suffice and PyTorch peaks at 4.6 GiB (docs/PERFORMANCE.md). A memory
// limit near the real need makes the runtime collect, and so drop idle pooled buffers, before the
// heap grows past it. Train sets it when the process has none (GOMEMLIMIT unset, none set by the
// host program) and restores "no limit" when it returns. The limit is the live heap before the
// first step (the model, optimizer state and whatever else the process holds) plus the largest
// temporary memory a step's compiled graph needs as the Go backend estimates it (no in-place
// reuse counted), plus 30%: at SmolLM2-135M's shapes 10% left so little headroom that the runtime
// collected ~100 times a step (+24% CPU), 30% ~25 times (+10–15%) and still peaks below PyTorch.
// The limit is soft: a heap that must grow past it still can (the runtime then spends up to half
// the CPU collecting). The graph is compiled ahead of its first run, so the limit holds from the
// first step on. Other backends keep their buffers outside the Go heap and report no estimate, so
// nothing is set for them.

// heapLimit is the limit Train set (0: none).
type heapLimit struct {
	base, limit int64
}

// temporaryMemory is the backend's estimate of the temporary bytes g's executable needs, 0 when
// the backend gives none.
func temporaryMemory(g *Graph) int64 {
	if g == nil {
		return 0
	}
	est, ok := g.Executable().(interface{ EstimatedTemporaryMemory() int64 })
	if !ok {
		return 0
	}
	return max(0, est.EstimatedTemporaryMemory())
}

// sizeHeap compiles c for the given input shapes ahead of its first run, reads the backend's
// temporary-memory estimate and sets or raises the soft memory limit before the graph allocates.
func (e *Engine) sizeHeap(c *compiled, inputShapes []shapes.Shape) error {
	if c.sized {
		return nil
	}
	g, err := c.exec.Compile(inputShapes...)
	if err != nil {
		return err
	}
	c.sized, c.tempBytes = true, temporaryMemory(g)
	var temp int64
	for _, c := range e.graphs {
		temp = max(temp, c.tempBytes)
	}
	if temp == 0 {
		return nil
	}
	if e.heapLimit.limit == 0 {
		if debug.SetMemoryLimit(-1) != math.MaxInt64 {
			return nil // the process has its own limit
		}
		// Two collections: the first moves idle pooled buffers aside, the second frees them.
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		e.heapLimit.base = int64(ms.HeapAlloc)
	} else if debug.SetMemoryLimit(-1) != e.heapLimit.limit {
		return nil // someone else changed it meanwhile
	}
	if limit := e.heapLimit.base + temp + temp*3/10; limit > e.heapLimit.limit {
		e.heapLimit.limit = limit
		debug.SetMemoryLimit(limit)
	}
	return nil
}

// releaseHeapLimit removes the limit Train set, unless someone changed it meanwhile.
func (e *Engine) releaseHeapLimit() {
	if e.heapLimit.limit != 0 && debug.SetMemoryLimit(-1) == e.heapLimit.limit {
		debug.SetMemoryLimit(math.MaxInt64)
	}
	e.heapLimit = heapLimit{}
}
