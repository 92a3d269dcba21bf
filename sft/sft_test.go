package sft

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/data"
	"handbook/model"
	"handbook/train"
)

const fixture = "../testdata/models/llama_gqa"

type trlGolden struct {
	Args struct {
		LearningRate    float64 `json:"learning_rate"`
		Scheduler       string  `json:"lr_scheduler_type"`
		WarmupSteps     float64 `json:"warmup_steps"`
		WeightDecay     float64 `json:"weight_decay"`
		MaxGradNorm     float64 `json:"max_grad_norm"`
		MaxSteps        int     `json:"max_steps"`
		BatchSize       int     `json:"per_device_train_batch_size"`
		Beta1           float64 `json:"adam_beta1"`
		Beta2           float64 `json:"adam_beta2"`
		Epsilon         float64 `json:"adam_epsilon"`
		GradientAccumul int     `json:"gradient_accumulation_steps"`
	} `json:"trl_args"`
	Samples []struct {
		InputIDs       []int32 `json:"input_ids"`
		CompletionMask []int32 `json:"completion_mask"`
	} `json:"samples"`
	PadID int32 `json:"pad_id"`
	Steps []map[string]float64
}

func loadGolden(t *testing.T) trlGolden {
	data, err := os.ReadFile("testdata/trl_sft.json")
	require.NoError(t, err)
	var g trlGolden
	require.NoError(t, json.Unmarshal(data, &g))
	return g
}

// TestMatchesTRLSFTTrainer replays TRL's SFTTrainer (tools/oracle/sft_golden.py): step-1 loss and
// grad_norm within 1e-5 relative, and the 20-step curve within 1e-3 relative at every step.
func TestMatchesTRLSFTTrainer(t *testing.T) {
	g := loadGolden(t)
	b, _, err := backend.New()
	require.NoError(t, err)
	m, err := model.Load(b, fixture, model.LoadOptions{})
	require.NoError(t, err)
	samples := make([]data.Sample, len(g.Samples))
	for i, s := range g.Samples {
		labels := make([]int32, len(s.InputIDs))
		for j, id := range s.InputIDs {
			labels[j] = id
			if s.CompletionMask[j] == 0 {
				labels[j] = data.IgnoreIndex
			}
		}
		samples[i] = data.Sample{InputIDs: s.InputIDs, Labels: labels}
	}
	out := t.TempDir()
	var entries []map[string]float64
	tr := &Trainer{Model: m, TrainSet: samples, Sinks: []train.Sink{sinkFunc(func(_ int, e map[string]float64) error {
		entries = append(entries, e)
		return nil
	})}, Config: Config{
		Args: train.Args{OutputDir: out, LearningRate: g.Args.LearningRate, LRSchedulerType: g.Args.Scheduler,
			WarmupSteps: g.Args.WarmupSteps, MaxSteps: g.Args.MaxSteps, MaxGradNorm: g.Args.MaxGradNorm, LoggingSteps: 1,
			GradientAccumulationSteps: g.Args.GradientAccumul,
			Optimizer:                 train.AdamW{Beta1: g.Args.Beta1, Beta2: g.Args.Beta2, Epsilon: g.Args.Epsilon, WeightDecay: g.Args.WeightDecay}},
		PerDeviceTrainBatchSize: g.Args.BatchSize, PadID: g.PadID,
	}}
	res, err := tr.Train(context.Background())
	require.NoError(t, err)
	require.Len(t, entries, len(g.Steps))
	for i, want := range g.Steps {
		tol := 1e-3
		if i == 0 {
			tol = 1e-5
		}
		for _, k := range []string{"loss", "grad_norm"} {
			assert.InEpsilon(t, want[k], entries[i][k], tol, "step %d %s", i+1, k)
		}
		assert.InDelta(t, want["learning_rate"], entries[i]["learning_rate"], 1e-12, "step %d learning_rate", i+1)
		assert.InDelta(t, want["mean_token_accuracy"], entries[i]["mean_token_accuracy"], 1e-6, "step %d accuracy", i+1)
		assert.Equal(t, want["num_tokens"], entries[i]["num_tokens"], "step %d num_tokens", i+1)
	}
	assert.Equal(t, g.Args.MaxSteps, res.GlobalStep)

	// The output directory is what transformers' Trainer leaves, and it loads back.
	for _, f := range []string{"config.json", "model.safetensors", "train_results.json", "all_results.json", train.TrainerStateFile, train.LogFile} {
		assert.FileExists(t, filepath.Join(out, f))
	}
	back, err := model.Load(b, out, model.LoadOptions{})
	require.NoError(t, err)
	assert.Equal(t, m.Config.ParamSpecs(), back.Config.ParamSpecs())
}

func TestTrainerRejectsBadSetup(t *testing.T) {
	b, _, err := backend.New()
	require.NoError(t, err)
	m, err := model.Load(b, fixture, model.LoadOptions{})
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"output dir is a file", Config{Args: train.Args{OutputDir: file, LearningRate: 1e-3, MaxSteps: 1}}, "is a file"},
		{"no output dir", Config{Args: train.Args{LearningRate: 1e-3, MaxSteps: 1}}, "output_dir is required"},
		{"packing without length", Config{Args: train.Args{OutputDir: t.TempDir(), LearningRate: 1e-3, MaxSteps: 1}, Packing: true}, "max_length"},
		{"negative batch", Config{Args: train.Args{OutputDir: t.TempDir(), MaxSteps: 1}, PerDeviceTrainBatchSize: -2},
			"sft: per_device_train_batch_size must be positive, got -2 (Config.PerDeviceTrainBatchSize)"},
		{"negative learning rate", Config{Args: train.Args{OutputDir: t.TempDir(), LearningRate: -1, MaxSteps: 1}}, "learning_rate must be positive, got -1 (Args.LearningRate)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &Trainer{Model: m, Config: tc.cfg, TrainSet: []data.Sample{{InputIDs: []int32{1, 2, 3}, Labels: []int32{1, 2, 3}}}}
			_, err := tr.Train(context.Background())
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

type sinkFunc func(step int, m map[string]float64) error

func (f sinkFunc) Log(step int, m map[string]float64) error { return f(step, m) }

// TestZeroConfigIsSFTConfig: a Config with only an output directory trains with TRL's SFTConfig
// defaults — learning rate 2e-5, batches of 8, 3 epochs — and the data order follows DataSeed.
func TestZeroConfigIsSFTConfig(t *testing.T) {
	b, _, err := backend.New()
	require.NoError(t, err)
	samples := make([]data.Sample, 20)
	for i := range samples {
		ids := []int32{int32(i + 1), int32(i + 2), int32(i + 3), int32(i + 4)}
		samples[i] = data.Sample{InputIDs: ids, Labels: ids}
	}
	run := func(cfg Config) ([]map[string]float64, Result) {
		m, err := model.Load(b, fixture, model.LoadOptions{})
		require.NoError(t, err)
		var entries []map[string]float64
		tr := &Trainer{Model: m, TrainSet: samples, Config: cfg, Sinks: []train.Sink{sinkFunc(func(_ int, e map[string]float64) error {
			entries = append(entries, e)
			return nil
		})}}
		res, err := tr.Train(context.Background())
		require.NoError(t, err)
		return entries, res
	}
	entries, res := run(Config{Args: train.Args{OutputDir: t.TempDir(), LoggingSteps: 1}})
	assert.Equal(t, 3*3, res.GlobalStep, "3 epochs of ceil(20/8) batches")
	assert.InDelta(t, DefaultLearningRate, entries[0]["learning_rate"], 1e-15)
	again, _ := run(Config{Args: train.Args{OutputDir: t.TempDir(), LoggingSteps: 1}})
	assert.Equal(t, entries[0]["loss"], again[0]["loss"], "same DataSeed, same first batch")
	other, _ := run(Config{Args: train.Args{OutputDir: t.TempDir(), LoggingSteps: 1, DataSeed: 5}})
	assert.NotEqual(t, entries[0]["loss"], other[0]["loss"], "another DataSeed, another first batch")
}
