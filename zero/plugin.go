package zero

import (
	"os"
	"path/filepath"
)

// XLACPUPlugin returns the absolute path of the XLA CPU PJRT plugin: HANDBOOK_XLA_CPU_PLUGIN when
// set, else where tools/install-xla-cpu.sh installs it (~/.cache/handbook/xla-cpu). It is kept out
// of go-xla's default search folders on purpose, so programs use it only when asked
// (GOMLX_BACKEND=xla:<path>).
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
