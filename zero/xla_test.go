package zero_test

import (
	"fmt"
	"handbook/backend"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/go-xla/compute/xla"
	"github.com/gomlx/go-xla/pjrt"
)

// testDevices is the device count the multi-device tests run on.
var testDevices = 4

func init() {
	if n, err := strconv.Atoi(os.Getenv("ZERO_TEST_DEVICES")); err == nil && n > 0 {
		testDevices = n
	}
}

// xlaConfig is the backend configuration of the XLA CPU plugin: GOMLX_BACKEND when it names XLA,
// else the installed plugin.
func xlaConfig() (string, bool) {
	if cfg := os.Getenv("GOMLX_BACKEND"); strings.HasPrefix(cfg, "xla") {
		return cfg, true
	}
	path, ok := backend.XLACPUPlugin()
	return "xla:" + path, ok
}

// xlaBackend returns the XLA CPU backend with at least testDevices devices. Without the plugin the
// test fails when CI=true (CI installs it) and is skipped otherwise, saying how to install it.
func xlaBackend(t *testing.T) compute.Backend {
	t.Helper()
	missing := func(why string) {
		msg := why + "; install the XLA CPU plugin with tools/install-xla-cpu.sh (or set HANDBOOK_XLA_CPU_PLUGIN to its .so)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cfg, ok := xlaConfig()
	if !ok {
		missing("XLA CPU PJRT plugin not found")
	}
	b, err := newBackend(cfg)
	if err != nil {
		missing("XLA backend " + cfg + " failed to start: " + err.Error())
	}
	if b.NumDevices() < testDevices {
		t.Fatalf("XLA backend %s has %d devices, want %d", cfg, b.NumDevices(), testDevices)
	}
	return b
}

var backends = map[string]compute.Backend{}

// newBackend creates one backend per configuration for the whole test binary: a PJRT client is
// expensive and the plugin is loaded once per process anyway.
func newBackend(cfg string) (b compute.Backend, err error) {
	if b, ok := backends[cfg]; ok {
		return b, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("creating backend %q: %v", cfg, r)
		}
	}()
	// The CPU plugin (xla-cpu-pjrt 0.0.1) ignores XLA_FLAGS=--xla_force_host_platform_device_count
	// and takes its device count from the client option cpu_device_count (4 when not given): ask
	// for the test's count explicitly.
	var opts pjrt.NamedValuesMap
	if strings.Contains(cfg, "cpu") {
		opts = pjrt.NamedValuesMap{"cpu_device_count": int64(testDevices)}
	}
	b, err = xla.NewWithOptions(strings.TrimPrefix(cfg, "xla:"), opts)
	if err == nil {
		backends[cfg] = b
	}
	return b, err
}
