package lora

import (
	"context"
	"math/rand/v2"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/model"
	"handbook/train"
)

// benchShape is a benchmark's model config and batch of random tokens.
type benchShape struct {
	config     string
	batch, seq int
}

// benchModel is the bench model of docs/PERFORMANCE.md (batch 8 × 256), the same as
// tools/bench/torch_ref.py; realShape has SmolLM2-135M's shapes (batch 4 × 256), the same as
// tools/bench/peft_ref.py --config testdata/bench/smollm2/config.json --batch 4.
var (
	benchModel = benchShape{"../testdata/bench/config.json", 8, 256}
	realShape  = benchShape{"../testdata/bench/smollm2/config.json", 4, 256}
)

// benchTrainStep times Engine optimizer steps of a random-weight model of the shape's config on
// one batch of random tokens, with setup applied to the model first (nil: full fine-tuning). Run
// one benchmark per process when comparing peak RSS (-bench 'TrainStep/lora$'): the max is over
// the process's life.
func benchTrainStep(b *testing.B, shape benchShape, setup func(m *model.Model) (*Adapter, error)) {
	// The testing package runs a benchmark once with b.N = 1 before the timed run: release that
	// run's model so the peak RSS is one run's.
	debug.FreeOSMemory()
	be, sel, err := backend.New()
	require.NoError(b, err)
	b.Log(sel)
	cfg, err := model.LoadConfig(shape.config)
	require.NoError(b, err)
	w, err := model.RandomWeights(cfg, dtypes.Float32, 1)
	require.NoError(b, err)
	m, err := model.New(be, cfg, w)
	require.NoError(b, err)
	e := &train.Engine{Model: m, Objective: train.CausalLM{},
		Args: train.Args{OutputDir: b.TempDir(), LearningRate: 1e-4, MaxSteps: b.N + 1, MaxGradNorm: 1}}
	if setup != nil {
		a, err := setup(m)
		require.NoError(b, err)
		e.Adapter, e.Args.Seed = a, 1
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]int32, shape.batch*shape.seq)
	for i := range ids {
		ids[i] = int32(rng.IntN(cfg.VocabSize))
	}
	batch := tensors.FromFlatDataAndDimensions(ids, shape.batch, shape.seq)
	var cpu0 time.Duration
	e.Progress = func(step, _ int, _ float64) {
		if step == 1 { // the first step compiles
			b.ResetTimer()
			cpu0 = cpuTime()
		}
	}
	_, err = e.Train(context.Background(), fixedBatches{{"input_ids": batch, "labels": batch}}, nil)
	require.NoError(b, err)
	b.ReportMetric(float64(shape.batch*shape.seq*b.N)/b.Elapsed().Seconds(), "tokens/s")
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-rss-MiB")
}

// benchLoRA attaches the benchmarks' adapter (r=16, α=32, all-linear), on an NF4 base with
// double quantization when quantize is set.
func benchLoRA(quantize bool) func(m *model.Model) (*Adapter, error) {
	return func(m *model.Model) (*Adapter, error) {
		if quantize {
			if err := QuantizeBase(m, QuantizeOptions{DoubleQuant: true}); err != nil {
				return nil, err
			}
		}
		return Attach(m, Config{R: 16, Alpha: 32, TargetModules: []string{AllLinear}}, 1)
	}
}

// BenchmarkTrainStep compares full fine-tuning with LoRA and QLoRA on the bench model.
func BenchmarkTrainStep(b *testing.B) {
	b.Run("full", func(b *testing.B) { benchTrainStep(b, benchModel, nil) })
	b.Run("lora", func(b *testing.B) { benchTrainStep(b, benchModel, benchLoRA(false)) })
	b.Run("qlora", func(b *testing.B) { benchTrainStep(b, benchModel, benchLoRA(true)) })
}

// BenchmarkRealShapeStep is full fine-tuning and LoRA on SmolLM2-135M's shapes (vocab 49152,
// hidden 576, 30 layers, GQA 9/3 heads, tied embeddings; random weights), batch 4 × 256.
func BenchmarkRealShapeStep(b *testing.B) {
	b.Run("full", func(b *testing.B) { benchTrainStep(b, realShape, nil) })
	b.Run("lora", func(b *testing.B) { benchTrainStep(b, realShape, benchLoRA(false)) })
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is the process's peak resident set size in bytes (Linux reports KiB).
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss << 10
}
