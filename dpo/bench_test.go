package dpo

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/data"
	"handbook/lora"
	"handbook/model"
	"handbook/train"
)

// BenchmarkDPOStep times DPO optimizer steps of the bench model (testdata/bench): 4 pairs of a
// 128-token prompt and 128-token completions, i.e. 8 rows × 256 tokens like the SFT bench.
// full: the reference is a frozen copy scored in its own forward pass; lora: r 16 on every
// linear layer, the reference is the adapter-disabled base in the same graph. Run one sub-benchmark
// per process when comparing peak RSS. tools/bench/dpo_ref.py is the PyTorch eager step.
func BenchmarkDPOStep(b *testing.B) {
	for _, variant := range []string{"full", "lora"} {
		b.Run(variant, func(b *testing.B) {
			be, _, err := backend.New()
			require.NoError(b, err)
			cfg, err := model.LoadConfig("../testdata/bench/config.json")
			require.NoError(b, err)
			w, err := model.RandomWeights(cfg, dtypes.Float32, 1)
			require.NoError(b, err)
			m, err := model.New(be, cfg, w)
			require.NoError(b, err)
			rng := rand.New(rand.NewPCG(1, 2))
			ids := func(n int) []int32 {
				out := make([]int32, n)
				for i := range out {
					out[i] = int32(rng.IntN(cfg.VocabSize))
				}
				return out
			}
			pairs := make([]data.PreferenceSample, 4)
			for i := range pairs {
				pairs[i] = data.PreferenceSample{PromptIDs: ids(128), ChosenIDs: ids(128), RejectedIDs: ids(128)}
			}
			t := &Trainer{Model: m, TrainSet: pairs, Config: Config{
				Args:       train.Args{OutputDir: b.TempDir(), LearningRate: 1e-4, MaxSteps: b.N + 1, MaxGradNorm: 1, LoggingSteps: 1 << 30},
				LossConfig: DefaultLossConfig(), RunArgs: RunArgs{PerDeviceTrainBatchSize: 4, OverwriteOutputDir: true},
			}}
			if variant == "lora" {
				a, err := lora.Attach(m, lora.Config{R: 16, Alpha: 32, TargetModules: []string{"all-linear"}}, 1)
				require.NoError(b, err)
				t.Adapter = a
			}
			t.Progress = func(step, _ int, _ float64) {
				if step == 1 { // the first step compiles
					b.ResetTimer()
				}
			}
			_, err = t.Train(context.Background())
			require.NoError(b, err)
			b.ReportMetric(float64(8*256*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
