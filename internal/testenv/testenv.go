package testenv

import (
	"net"
	"os"
	"testing"

	"github.com/gomlx/compute"

	"handbook/backend"
)

// XLACPUPlugin returns the XLA CPU plugin's path. Without it the test fails when CI=true (CI
// installs it) and is skipped otherwise, saying how to install it.
func XLACPUPlugin(t testing.TB) string {
	t.Helper()
	path, ok := backend.XLACPUPlugin()
	if !ok {
		msg := "XLA CPU PJRT plugin not found; install it with tools/install-xla-cpu.sh (or set HANDBOOK_XLA_CPU_PLUGIN)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// FreePort returns a localhost TCP port nobody listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// XLACPUBackend starts the XLA CPU plugin with the given number of host devices for the test
// (skipping or failing as XLACPUPlugin does) and finalizes it when the test ends.
func XLACPUBackend(t testing.TB, devices int) compute.Backend {
	t.Helper()
	XLACPUPlugin(t)
	b, err := backend.NewXLACPU(devices)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Finalize)
	return b
}
