package xlatest

import (
	"os"
	"testing"

	"github.com/gomlx/compute"

	"handbook/backend"
)

// Backend starts the XLA CPU plugin with the given number of devices for the test and finalizes
// it when the test ends.
func Backend(tb testing.TB, devices int) compute.Backend {
	tb.Helper()
	b, err := backend.NewXLACPU(devices)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal(err)
		}
		tb.Skip(err)
	}
	tb.Cleanup(b.Finalize)
	return b
}
