//go:build goexperiment.simd

package train

import (
	"testing"

	"github.com/gomlx/compute"

	"handbook/backend"
)

// The bf16 acceptance tests on the pure-Go backend, which computes bf16 natively (about 2× slower
// per step than float32 here). Without GOEXPERIMENT=simd the backend is ~10× slower again, so
// these run only in the simd half of the suite.

func TestBF16AutocastMatchesTorchGoBackend(t *testing.T) { checkBF16Training(t, goBackend(t)) }

func TestBF16RoundsWhereTorchDoesGoBackend(t *testing.T) { checkBF16Rounding(t, goBackend(t)) }

func goBackend(t *testing.T) compute.Backend {
	t.Helper()
	t.Setenv(backend.EnvVar, backend.GoConfig)
	b, _, err := backend.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Finalize)
	return b
}
