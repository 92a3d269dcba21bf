package handbook

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/internal/testenv"
	"handbook/model"
	"handbook/sft"
	"handbook/train"
)

const tinyRecipe = "recipes/tiny/sft/config_full.yaml"

// TestRunTinyRecipe runs the bundled demo recipe for a few steps and checks the output directory
// is what transformers' Trainer leaves (and loads back), with the logs the recipe asks for.
func TestRunTinyRecipe(t *testing.T) {
	out := t.TempDir()
	r, err := LoadRecipe(tinyRecipe, TaskSFT, []string{"--max_steps=6", "--eval_steps=3", "--save_steps=3", "--logging_steps=2", "--output_dir=" + out})
	require.NoError(t, err)
	var steps []int
	res, err := Run(context.Background(), r, RunOptions{ExactMatch: 8, Progress: func(step, _ int, _ float64) { steps = append(steps, step) }})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6}, steps)
	assert.Equal(t, 6, res.Train.GlobalStep)
	assert.Equal(t, 2500, res.TrainRows)
	assert.Equal(t, 200, res.TestRows)
	require.NotNil(t, res.ExactMatchBefore)
	require.NotNil(t, res.ExactMatchAfter)
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "train_results.json",
		"all_results.json", "trainer_state.json", "metrics.jsonl", "loss.png", "checkpoint-6/trainer_state.json"} {
		assert.FileExists(t, filepath.Join(out, f))
	}
	assert.NoDirExists(t, filepath.Join(out, "checkpoint-3"), "save_total_limit: 1 keeps the last checkpoint only")
	events, err := filepath.Glob(filepath.Join(out, "runs", "*", "events.out.tfevents.*"))
	require.NoError(t, err)
	assert.Len(t, events, 1, "report_to: tensorboard")

	var state struct {
		GlobalStep int                  `json:"global_step"`
		LogHistory []map[string]float64 `json:"log_history"`
	}
	data, err := os.ReadFile(filepath.Join(out, "trainer_state.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &state))
	assert.Equal(t, 6, state.GlobalStep)
	var evals int
	for _, e := range state.LogHistory {
		if _, ok := e["eval_loss"]; ok {
			evals++
		}
	}
	assert.Equal(t, 2, evals, "eval at steps 3 and 6")

	b, _, err := backend.New()
	require.NoError(t, err)
	m, err := model.Load(b, out, model.LoadOptions{})
	require.NoError(t, err)
	assert.Equal(t, model.Llama, m.Config.ModelType)
}

func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		overrides []string
		want      string
	}{
		{"missing model", []string{"--model_name_or_path=/nonexistent/model"}, "is neither a local directory nor a Hub repository id"},
		{"missing dataset", []string{`--dataset_mixture={"datasets":[{"id":"/nonexistent/data","split":"train"}]}`}, "/nonexistent/data"},
		{"two machines", []string{"--config_file=zero/testdata/made_zero3_two_machines.yaml"}, "num_machines 2: multi-host training does not run yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := LoadRecipe(tinyRecipe, TaskSFT, append(tc.overrides, "--output_dir="+t.TempDir()))
			require.NoError(t, err)
			_, err = Run(context.Background(), r, RunOptions{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), tinyRecipe)
		})
	}
}

func TestOptimizerNames(t *testing.T) {
	for _, tc := range []struct {
		optim string
		want  train.Optimizer
		err   string
	}{
		{"adamw_torch", train.AdamW{Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, WeightDecay: 0.01}, ""},
		{"paged_adamw_8bit", train.AdamW{Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, WeightDecay: 0.01}, ""},
		{"rmsprop", train.RMSprop{Alpha: 0.99, Epsilon: 1e-8, WeightDecay: 0.01}, ""},
		{"sgd", train.SGD{WeightDecay: 0.01}, ""},
		{"adafactor", nil, `optim "adafactor" is not implemented`},
	} {
		t.Run(tc.optim, func(t *testing.T) {
			r, err := LoadRecipe(tinyRecipe, TaskSFT, []string{"--optim=" + tc.optim})
			require.NoError(t, err)
			got, err := r.Optimizer(slog.New(slog.DiscardHandler))
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				assert.Contains(t, err.Error(), tinyRecipe)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestRunPreferenceRecipes runs the tiny DPO and ORPO recipes for a few steps (from a fresh tiny
// model, so no SFT run is needed) and checks each logged its objective's eval metrics.
func TestRunPreferenceRecipes(t *testing.T) {
	for _, tc := range []struct {
		task   Task
		recipe string
		metric string
	}{
		{TaskDPO, "recipes/tiny/dpo/config_full.yaml", "eval_rewards/accuracies"},
		{TaskORPO, "recipes/tiny/orpo/config_full.yaml", "eval_log_odds_ratio"},
	} {
		t.Run(string(tc.task), func(t *testing.T) {
			out := t.TempDir()
			r, err := LoadRecipe(tc.recipe, tc.task, []string{"--model_name_or_path=recipes/tiny/model",
				"--max_steps=4", "--eval_steps=2", "--save_steps=2", "--logging_steps=1", "--output_dir=" + out})
			require.NoError(t, err)
			res, err := Run(context.Background(), r, RunOptions{ExactMatch: 4})
			require.NoError(t, err)
			assert.Equal(t, 4, res.Train.GlobalStep)
			assert.Equal(t, jsonlRows(t, "recipes/tiny/data/preference/train.jsonl"), res.TrainRows, "pairs: the train split, whole")
			require.NotNil(t, res.ExactMatchAfter)
			var state struct {
				LogHistory []map[string]float64 `json:"log_history"`
			}
			raw, err := os.ReadFile(filepath.Join(out, "trainer_state.json"))
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(raw, &state))
			var evals int
			for _, e := range state.LogHistory {
				if _, ok := e[tc.metric]; ok {
					evals++
				}
			}
			assert.Equal(t, 2, evals, "%s at steps 2 and 4", tc.metric)
			assert.FileExists(t, filepath.Join(out, "model.safetensors"))
		})
	}
}

// TestRunLoRARecipes runs the tiny LoRA recipes (SFT, and DPO with the adapter-disabled base as
// reference) for a few steps: the output holds a PEFT adapter, not a full model.
func TestRunLoRARecipes(t *testing.T) {
	for _, tc := range []struct {
		path string
		task Task
	}{
		{"recipes/tiny/sft/config_lora.yaml", TaskSFT},
		{"recipes/tiny/dpo/config_lora.yaml", TaskDPO},
	} {
		t.Run(string(tc.task), func(t *testing.T) {
			out := t.TempDir()
			r, err := LoadRecipe(tc.path, tc.task, []string{"--model_name_or_path=recipes/tiny/model", "--max_steps=3",
				"--eval_strategy=no", "--save_steps=3", "--output_dir=" + out})
			require.NoError(t, err)
			res, err := Run(context.Background(), r, RunOptions{})
			require.NoError(t, err)
			assert.Equal(t, 3, res.Train.GlobalStep)
			for _, dir := range []string{out, filepath.Join(out, "checkpoint-3")} {
				assert.FileExists(t, filepath.Join(dir, "adapter_config.json"))
				assert.FileExists(t, filepath.Join(dir, "adapter_model.safetensors"))
				assert.NoFileExists(t, filepath.Join(dir, "model.safetensors"), "a LoRA run saves the adapter only")
			}
		})
	}
}

// TestRunConfigFileShardsTheRun runs the tiny SFT recipe with an accelerate config of 4 processes
// (ZeRO stage 1) on the XLA CPU plugin's devices, and without one on a single device with the same
// global batch: every step's loss agrees.
func TestRunConfigFileShardsTheRun(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", "xla:"+testenv.XLACPUPlugin(t))
	losses := func(overrides ...string) []float64 {
		out := t.TempDir()
		r, err := LoadRecipe(tinyRecipe, TaskSFT, append(overrides, "--max_steps=3", "--logging_steps=1",
			"--eval_strategy=no", "--save_strategy=no", "--report_to=none", "--output_dir="+out))
		require.NoError(t, err)
		res, err := Run(context.Background(), r, RunOptions{})
		require.NoError(t, err)
		var got []float64
		for _, e := range res.Train.State.LogHistory {
			if l, ok := e["loss"]; ok {
				got = append(got, l)
			}
		}
		require.Len(t, got, 3)
		return got
	}
	one := losses("--per_device_train_batch_size=32")
	sharded := losses("--per_device_train_batch_size=8", "--config_file=zero/testdata/made_zero1.yaml")
	for i := range one {
		assert.InEpsilonf(t, one[i], sharded[i], 1e-5, "step %d", i+1)
	}
}

// TestRunUsesDatasetRefLogps: a preference dataset with ref_chosen_logps/ref_rejected_logps
// columns is scored against them, not against a reference model (whose step-1 loss is ln 2);
// columns present in some rows only are an error naming the file and row.
func TestRunUsesDatasetRefLogps(t *testing.T) {
	raw, err := os.ReadFile("recipes/tiny/data/preference/train.jsonl")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")[:64]
	write := func(withRef func(i int) bool) string {
		dir := t.TempDir()
		var b strings.Builder
		for i, l := range lines {
			if withRef(i) {
				l = strings.TrimSuffix(l, "}") + `,"ref_chosen_logps":0,"ref_rejected_logps":0}`
			}
			b.WriteString(l + "\n")
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "train.jsonl"), []byte(b.String()), 0o644))
		return dir
	}
	run := func(dataDir string) (*RunResult, error) {
		r, err := LoadRecipe("recipes/tiny/dpo/config_full.yaml", TaskDPO, []string{"--model_name_or_path=recipes/tiny/model",
			"--dataset_name=" + dataDir, "--loss_type=sigmoid", "--loss_weights=1",
			"--max_steps=1", "--logging_steps=1", "--eval_strategy=no", "--save_strategy=no", "--report_to=none",
			"--output_dir=" + t.TempDir()})
		require.NoError(t, err)
		return Run(context.Background(), r, RunOptions{})
	}
	firstLoss := func(res *RunResult) float64 {
		for _, e := range res.Train.State.LogHistory {
			if l, ok := e["loss"]; ok {
				return l
			}
		}
		t.Fatal("no loss logged")
		return 0
	}
	res, err := run(write(func(int) bool { return false }))
	require.NoError(t, err)
	assert.InDelta(t, math.Ln2, firstLoss(res), 1e-5, "policy == reference model")
	res, err = run(write(func(int) bool { return true }))
	require.NoError(t, err)
	assert.Greater(t, math.Abs(firstLoss(res)-math.Ln2), 1e-3, "scored against the columns' zeros")
	_, err = run(write(func(i int) bool { return i%2 == 0 }))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "train.jsonl: row 1: columns [chosen rejected] differ from the first row's")
}

// jsonlRows counts the rows of a JSONL file.
func jsonlRows(t *testing.T, path string) int {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	return len(strings.Split(strings.TrimSpace(string(raw)), "\n"))
}

// TestBridgesComposeRun: a host composing a run from the recipe's exported bridges, as Run does,
// trains exactly Run's steps; adjusting the trainer's config between the bridges and the trainer
// changes the run.
func TestBridgesComposeRun(t *testing.T) {
	overrides := []string{"--max_steps=3", "--logging_steps=1", "--eval_strategy=no", "--save_strategy=no", "--report_to=none"}
	load := func() *Recipe {
		r, err := LoadRecipe(tinyRecipe, TaskSFT, append(overrides, "--output_dir="+t.TempDir()))
		require.NoError(t, err)
		return r
	}
	losses := func(history []map[string]float64) []float64 {
		var out []float64
		for _, e := range history {
			if l, ok := e["loss"]; ok {
				out = append(out, l)
			}
		}
		return out
	}
	res, err := Run(context.Background(), load(), RunOptions{})
	require.NoError(t, err)
	want := losses(res.Train.State.LogHistory)
	require.Len(t, want, 3)

	compose := func(adjust func(*sft.Config)) []float64 {
		ctx := context.Background()
		r := load()
		b, _, err := backend.New()
		require.NoError(t, err)
		m, base, err := r.LoadModel(ctx, b, nil)
		require.NoError(t, err)
		defer m.Finalize()
		ds, err := r.LoadDatasets(ctx, nil)
		require.NoError(t, err)
		adapter, err := r.AttachAdapter(m, base, nil)
		require.NoError(t, err)
		placement, err := r.Placement(b, nil)
		require.NoError(t, err)
		trainSet, testSet, _, err := ds.Samples(ctx)
		require.NoError(t, err)
		cfg, err := r.SFTConfig(ds.Tokenizer, len(trainSet), placement, nil)
		require.NoError(t, err)
		adjust(&cfg)
		sinks, closeSinks := r.Sinks(cfg.OutputDir)
		defer closeSinks()
		tr := &sft.Trainer{Model: m, Config: cfg, TrainSet: trainSet, EvalSet: testSet, TokenizerDir: ds.TokenizerDir,
			Adapter: adapter, Placement: placement, Sinks: sinks}
		out, err := tr.Train(ctx)
		require.NoError(t, err)
		return losses(out.State.LogHistory)
	}
	assert.Equal(t, want, compose(func(*sft.Config) {}))
	lower := compose(func(c *sft.Config) { c.LearningRate /= 100 })
	assert.Equal(t, want[0], lower[0], "the same first batch and weights")
	assert.NotEqual(t, want[2], lower[2], "a host's learning rate changes the run")
}
