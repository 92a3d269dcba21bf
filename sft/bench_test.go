package sft

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/data"
	"handbook/model"
	"handbook/train"
)

// BenchmarkTinyDemoStep times an sft.Trainer optimizer step of the demo model (recipes/tiny/model),
// batch 32 × 64 random tokens; tools/bench/torch_ref.py --tiny is the PyTorch step of the same shape.
func BenchmarkTinyDemoStep(b *testing.B) {
	be, _, err := backend.New()
	require.NoError(b, err)
	m, err := model.Init(be, "../recipes/tiny/model", 0, 1)
	require.NoError(b, err)
	rng := rand.New(rand.NewPCG(1, 2))
	samples := make([]data.Sample, 32*(b.N+1))
	for i := range samples {
		ids := make([]int32, 50)
		for j := range ids {
			ids[j] = int32(rng.IntN(256))
		}
		samples[i] = data.Sample{InputIDs: ids, Labels: ids}
	}
	tr := &Trainer{Model: m, TrainSet: samples, Config: Config{Args: train.Args{OutputDir: b.TempDir(), LearningRate: 1e-3, MaxSteps: b.N + 1, LoggingSteps: 1000},
		PerDeviceTrainBatchSize: 32, PadToMultipleOf: 64, OverwriteOutputDir: true}}
	b.ResetTimer()
	_, err = tr.Train(context.Background())
	require.NoError(b, err)
}
