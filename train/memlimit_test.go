package train

import (
	"context"
	"math"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTrainSetsAndRestoresHeapLimit: on the Go backend, Train runs under a soft memory limit
// above the heap it holds (sized from the backend's estimate of the step's temporaries) and
// restores "no limit" when it returns; a process that set its own limit keeps it.
func TestTrainSetsAndRestoresHeapLimit(t *testing.T) {
	m := loadFixture(t)
	if m.Backend().String() != "go" {
		t.Skipf("backend %s keeps its buffers outside the Go heap: no limit to set", m.Backend())
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	debug.SetMemoryLimit(math.MaxInt64)
	data := newTokenBatches(8, 12, 4, 5)
	args := baseArgs(t.TempDir())
	args.MaxSteps = 2
	var during []heapLimit
	var e *Engine
	e = &Engine{Model: m, Objective: CausalLM{}, Args: args, Progress: func(int, int, float64) {
		assert.Equal(t, e.heapLimit.limit, debug.SetMemoryLimit(-1), "the process runs under the engine's limit")
		during = append(during, e.heapLimit)
	}}
	_, err := e.Train(context.Background(), data, nil)
	require.NoError(t, err)
	require.Len(t, during, 2)
	for _, l := range during {
		assert.Positive(t, l.base, "the heap held before the first step")
		assert.Greater(t, l.limit, l.base, "room for the step's temporaries above it")
		assert.Less(t, l.limit, int64(math.MaxInt64))
	}
	assert.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1), "restored when Train returns")

	const own = 64 << 30
	debug.SetMemoryLimit(own)
	e = &Engine{Model: loadFixture(t), Objective: CausalLM{}, Args: args, Progress: func(int, int, float64) {
		assert.Equal(t, int64(own), debug.SetMemoryLimit(-1), "the process's own limit is kept")
	}}
	_, err = e.Train(context.Background(), data, nil)
	require.NoError(t, err)
	assert.Equal(t, int64(own), debug.SetMemoryLimit(-1))
}
