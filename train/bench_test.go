package train

import (
	"context"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/model"
)

// benchConfig is the bench model of docs/PERFORMANCE.md, the same as tools/bench/torch_ref.py.
const benchConfig = "../testdata/bench/config.json"

const benchBatch, benchSeq = 8, 256

// BenchmarkTrainStep times an Engine optimizer step of the bench model (forward, backward,
// global-norm clipping, AdamW), batch 8 × 256 tokens.
// Tokens/s = 2048 / (ns/op · 1e-9).
func BenchmarkTrainStep(b *testing.B) {
	be, sel, err := backend.New()
	require.NoError(b, err)
	b.Log(sel)
	cfg, err := model.LoadConfig(benchConfig)
	require.NoError(b, err)
	w, err := model.RandomWeights(cfg, dtypes.Float32, 1)
	require.NoError(b, err)
	m, err := model.New(be, cfg, w)
	require.NoError(b, err)
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]int32, benchBatch*benchSeq)
	for i := range ids {
		ids[i] = int32(rng.IntN(cfg.VocabSize))
	}
	batch := tensors.FromFlatDataAndDimensions(ids, benchBatch, benchSeq)
	e := &Engine{Model: m, Objective: CausalLM{}, Args: Args{OutputDir: b.TempDir(), LearningRate: 1e-4, MaxSteps: b.N + 1, MaxGradNorm: 1}}
	var cpu0 time.Duration
	e.Progress = func(step, _ int, _ float64) {
		if step == 1 { // the first step compiles
			b.ResetTimer()
			cpu0 = cpuTime()
		}
	}
	_, err = e.Train(context.Background(), sameBatch{map[string]*tensors.Tensor{"input_ids": batch, "labels": batch}}, nil)
	require.NoError(b, err)
	b.ReportMetric(float64(benchBatch*benchSeq*b.N)/b.Elapsed().Seconds(), "tokens/s")
	// CPU seconds per step (user+system, whole process) is steadier than wall time when other
	// processes share the cores.
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
}

// sameBatch serves one batch at every position.
type sameBatch struct{ batch map[string]*tensors.Tensor }

func (s sameBatch) Len() int { return 1 }

func (s sameBatch) Batch(int, int) (map[string]*tensors.Tensor, error) { return s.batch, nil }

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
