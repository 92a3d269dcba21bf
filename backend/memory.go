package backend

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/gomlx/go-xla/compute/xla"
	"github.com/gomlx/go-xla/pjrt"
	"github.com/gomlx/gomlx/core/graph"
)

// CompiledMemory is XLA's own accounting of a compiled program, per device, in bytes: what PJRT's
// GetCompiledMemoryStats reports once the program is compiled, before anything runs or is
// allocated.
type CompiledMemory struct {
	// Code is the generated code; Arguments and Outputs the program's parameters and results;
	// Aliased the bytes of outputs written into donated (aliased) parameters; Temporary the
	// buffers XLA's buffer assignment gives the program's intermediate values.
	Code, Arguments, Outputs, Aliased, Temporary int64
}

// Peak is the device memory the program needs while it runs: its arguments, its outputs that
// do not reuse an argument, and its temporaries.
func (m CompiledMemory) Peak() int64 {
	return m.Arguments + m.Outputs - m.Aliased + m.Temporary
}

// Transient is what running the program adds to the memory its arguments already hold.
func (m CompiledMemory) Transient() int64 {
	return m.Outputs - m.Aliased + m.Temporary
}

// CompiledMemoryOf returns XLA's memory statistics of a compiled graph (graph.Exec.Compile
// compiles from shapes alone). It is an error for graphs of other backends, which keep no such
// accounting.
//
// go-xla's compute/xla.Executable keeps its *pjrt.LoadedExecutable (which reads the statistics
// when it is created) in an unexported field and has no accessor, so this reads the field by
// reflection; the go.mod pin of go-xla keeps the layout fixed, and a changed layout is an error
// here rather than a crash.
func CompiledMemoryOf(g *graph.Graph) (CompiledMemory, error) {
	exec, ok := g.Executable().(*xla.Executable)
	if !ok || exec == nil {
		return CompiledMemory{}, fmt.Errorf("compiled memory: graph %q is not compiled by XLA (backend %s)", g.Name(), g.Backend().Name())
	}
	field := reflect.ValueOf(exec).Elem().FieldByName("exec")
	if !field.IsValid() || field.Type() != reflect.TypeFor[*pjrt.LoadedExecutable]() {
		return CompiledMemory{}, fmt.Errorf("compiled memory: go-xla's Executable no longer holds a *pjrt.LoadedExecutable in field exec")
	}
	loaded := *(**pjrt.LoadedExecutable)(unsafe.Pointer(field.UnsafeAddr()))
	if loaded == nil {
		return CompiledMemory{}, fmt.Errorf("compiled memory: graph %q has been finalized", g.Name())
	}
	s := loaded.OnDeviceMemoryUsageStats
	return CompiledMemory{Code: s.GeneratedCode, Arguments: s.Inputs, Outputs: s.Outputs, Aliased: s.Aliases, Temporary: s.Temporary}, nil
}
