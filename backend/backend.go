package backend

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // registers the "go" backend
	"github.com/gomlx/go-xla/compute/xla"
)

// EnvVar is the environment variable that forces a backend configuration, as GoMLX defines it.
const EnvVar = compute.ConfigEnvVar

// Selection says which backend configuration was chosen and why.
type Selection struct {
	// Config is the GoMLX configuration string given to compute.NewWithConfig ("go", "xla:cpu", …).
	Config string
	// Reason is a short human explanation, fit for one log line.
	Reason string
}

// String renders the selection as the one log line the library promises.
func (s Selection) String() string {
	return fmt.Sprintf("backend %s (%s)", s.Config, s.Reason)
}

// GoConfig is the pure-Go backend as this library uses it: ops run one after another, each op
// still parallel inside (matmuls). On the 2-core bench machine that is 14% faster than the
// default op-level parallelism for a training step (docs/PERFORMANCE.md); GOMLX_BACKEND=go
// restores GoMLX's default. Ops run in the order the graph was built (creation_order) rather
// than longest-path-first: that order frees each activation soon after its last use (the
// forward, then the backward layer by layer, and model.Decoder.CausalLMHeadLoss's chunks one at
// a time), where longest-path-first runs same-depth ops of every chunk or layer together and
// keeps their outputs alive at once (about 1 GB more at SmolLM2-135M's shapes).
const GoConfig = "go:ops_sequential,creation_order"

func init() {
	// Never download a plugin behind the user's back: offline machines must fall back to Go.
	xla.EnableAutoInstall(false)
}

// Choose decides the backend configuration without creating it.
func Choose() Selection {
	if cfg, ok := os.LookupEnv(EnvVar); ok && strings.TrimSpace(cfg) != "" {
		return Selection{Config: strings.TrimSpace(cfg), Reason: EnvVar + " is set"}
	}
	if plugins := xla.GetAvailablePlugins(); len(plugins) > 0 {
		name := plugins[0]
		for _, p := range plugins {
			if p == "cuda" || strings.HasPrefix(p, "cuda") {
				name = p
				break
			}
		}
		return Selection{Config: "xla:" + name, Reason: fmt.Sprintf("PJRT plugins found: %s", strings.Join(plugins, ", "))}
	}
	return Selection{Config: GoConfig, Reason: "no PJRT plugin found; using the pure-Go backend"}
}

// New creates the chosen backend. When XLA was picked only because a plugin was found and it
// fails to start, New falls back to the Go backend and says so in the returned Selection.
func New() (compute.Backend, Selection, error) {
	sel := Choose()
	b, err := Open(sel.Config)
	if err == nil {
		return b, sel, nil
	}
	if _, forced := os.LookupEnv(EnvVar); forced {
		return nil, sel, fmt.Errorf("backend %q from %s: %w", sel.Config, EnvVar, err)
	}
	fallback := Selection{Config: GoConfig, Reason: fmt.Sprintf("%s failed to start (%v); using the pure-Go backend", sel.Config, err)}
	b, err = Open(fallback.Config)
	if err != nil {
		return nil, fallback, fmt.Errorf("go backend: %w", err)
	}
	return b, fallback, nil
}

// Open creates the backend a GoMLX configuration string names ("go", "xla:cpu",
// "xla:/path/plugin.so,preallocate=false", …), turning GoMLX's panics on unknown names into errors.
func Open(cfg string) (b compute.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("creating backend %q: %v", cfg, r)
		}
	}()
	return compute.NewWithConfig(cfg)
}
