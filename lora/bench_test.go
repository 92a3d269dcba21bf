package lora

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
	"handbook/train"
)

// benchConfig is the bench model of docs/PERFORMANCE.md, the same as tools/bench/torch_ref.py.
const benchConfig = "../testdata/bench/config.json"

const benchBatch, benchSeq = 8, 256

// benchTrainStep times Engine optimizer steps of the bench model (batch 8 × 256 tokens) with
// setup applied to the model first (nil: full fine-tuning). Run one benchmark per process when
// comparing peak RSS (-bench 'TrainStep/lora$'): the max is over the process's life.
func benchTrainStep(b *testing.B, setup func(m *model.Model) (*Adapter, error)) {
	be, sel, err := backend.New()
	require.NoError(b, err)
	b.Log(sel)
	cfg, err := model.LoadConfig(benchConfig)
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
	ids := make([]int32, benchBatch*benchSeq)
	for i := range ids {
		ids[i] = int32(rng.IntN(cfg.VocabSize))
	}
	batch := tensors.FromFlatDataAndDimensions(ids, benchBatch, benchSeq)
	var cpu0 time.Duration
	e.Progress = func(step, _ int, _ float64) {
		if step == 1 { // the first step compiles
			b.ResetTimer()
			cpu0 = cpuTime()
		}
	}
	_, err = e.Train(context.Background(), fixedBatches{{"input_ids": batch, "labels": batch}}, nil)
	require.NoError(b, err)
	b.ReportMetric(float64(benchBatch*benchSeq*b.N)/b.Elapsed().Seconds(), "tokens/s")
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-rss-MiB")
}

// BenchmarkTrainStep compares full fine-tuning with LoRA (r=16, α=32, all-linear) and QLoRA
// (NF4 base, double quantization) on the bench model.
func BenchmarkTrainStep(b *testing.B) {
	lora := func(quantize bool) func(m *model.Model) (*Adapter, error) {
		return func(m *model.Model) (*Adapter, error) {
			if quantize {
				if err := QuantizeBase(m, QuantizeOptions{DoubleQuant: true}); err != nil {
					return nil, err
				}
			}
			return Attach(m, Config{R: 16, Alpha: 32, TargetModules: []string{AllLinear}}, 1)
		}
	}
	b.Run("full", func(b *testing.B) { benchTrainStep(b, nil) })
	b.Run("lora", func(b *testing.B) { benchTrainStep(b, lora(false)) })
	b.Run("qlora", func(b *testing.B) { benchTrainStep(b, lora(true)) })
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
