// Package backend chooses the GoMLX compute backend for the whole library, in one place.
//
// The order is: the GOMLX_BACKEND environment variable when set (for example "go", "xla:cpu" or
// "xla:/abs/path/pjrt_c_api_cpu_plugin.so"); otherwise XLA when a PJRT plugin is found on the
// search path (PJRT_PLUGIN_LIBRARY_PATH, /usr/local/lib/go-xla, ~/.local/lib/go-xla, the system
// library directories); otherwise the pure-Go backend. go-xla's auto-install (which downloads a
// plugin) is switched off, so an offline machine without a plugin never hangs or fails: it runs
// on the Go backend. The choice and its reason are returned as a [Selection] so the caller can
// log one line.
package backend
