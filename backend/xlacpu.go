package backend

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/compute"
	"github.com/gomlx/go-xla/compute/xla"
	"github.com/gomlx/go-xla/pjrt"
)

// XLACPUPlugin returns the absolute path of the XLA CPU PJRT plugin: HANDBOOK_XLA_CPU_PLUGIN when
// set, else where tools/install-xla-cpu.sh installs it (~/.cache/handbook/xla-cpu). It is kept out
// of go-xla's default search folders on purpose, so programs use it only when asked
// (GOMLX_BACKEND=xla:<path>, or NewXLACPU).
func XLACPUPlugin() (string, bool) {
	candidates := []string{os.Getenv("HANDBOOK_XLA_CPU_PLUGIN")}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".cache", "handbook", "xla-cpu", "pjrt_c_api_cpu_plugin.so"))
	}
	for _, p := range candidates {
		if p == "" {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			if _, err := os.Stat(abs); err == nil {
				return abs, true
			}
		}
	}
	return "", false
}

// NewXLACPU starts the XLA CPU plugin (XLACPUPlugin) with the given number of host devices. The
// PyPI plugin (xla-cpu-pjrt 0.0.1) ignores XLA_FLAGS=--xla_force_host_platform_device_count and
// takes its device count from the client option cpu_device_count.
func NewXLACPU(devices int) (b compute.Backend, err error) {
	path, ok := XLACPUPlugin()
	if !ok {
		return nil, fmt.Errorf("XLA CPU PJRT plugin not found: install it with tools/install-xla-cpu.sh or set HANDBOOK_XLA_CPU_PLUGIN")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("starting the XLA CPU plugin %s: %v", path, r)
		}
	}()
	return xla.NewWithOptions(path, pjrt.NamedValuesMap{"cpu_device_count": int64(max(devices, 1))})
}
