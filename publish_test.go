package handbook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"handbook/backend"
	"handbook/hub"
	"handbook/hub/hubtest"
	"handbook/model"
	"handbook/train/wandb"
)

// tinyPushRun trains the demo recipe for 4 steps (checkpoints at 2 and 4) with push_to_hub.
func tinyPushRun(t *testing.T, extra ...string) (string, *RunResult) {
	out := filepath.Join(t.TempDir(), "tiny-sft")
	args := append([]string{"--max_steps=4", "--save_steps=2", "--logging_steps=2", "--eval_strategy=no", "--save_total_limit=1",
		"--output_dir=" + out, "--push_to_hub=true"}, extra...)
	r, err := LoadRecipe(tinyRecipe, TaskSFT, args)
	require.NoError(t, err)
	res, err := Run(context.Background(), r, RunOptions{})
	require.NoError(t, err)
	return out, res
}

// assertPushedOutput checks the repository holds the output directory as the final push left it
// (no staging, and checkpoint-* folders only with hub_strategy all_checkpoints), byte for byte,
// also when downloaded back through package hub.
func assertPushedOutput(t *testing.T, s *hubtest.Server, repo, branch, out string, checkpointFolders bool) {
	files := s.Files(repo, branch)
	require.NotNil(t, files, "repository %s@%s", repo, branch)
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md",
		"train_results.json", "trainer_state.json", "metrics.jsonl"} {
		local, err := os.ReadFile(filepath.Join(out, name))
		require.NoError(t, err, name)
		assert.True(t, bytes.Equal(local, files[name]), "%s as pushed equals the local file", name)
	}
	for name := range files {
		assert.False(t, strings.HasPrefix(name, "_"), "staging %s is not pushed", name)
		if strings.HasPrefix(name, "checkpoint-") && !checkpointFolders {
			t.Errorf("output-dir checkpoint %s pushed", name)
		}
	}
	c, err := hub.FromEnv()
	require.NoError(t, err)
	snap, err := c.Snapshot(context.Background(), hub.Model, repo, branch)
	require.NoError(t, err)
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(snap, filepath.FromSlash(name)))
		require.NoError(t, err, name)
		assert.True(t, bytes.Equal(data, got), "%s downloaded back is byte-identical", name)
	}

	var front map[string]any
	parts := strings.SplitN(string(files["README.md"]), "---\n", 3)
	require.Len(t, parts, 3)
	require.NoError(t, yaml.Unmarshal([]byte(parts[1]), &front))
	assert.Equal(t, "transformers", front["library_name"])
	assert.Equal(t, []any{"generated_from_trainer", "alignment-handbook", "trl", "sft"}, front["tags"])
	assert.Contains(t, parts[2], `pipeline("text-generation", model="`+repo+`"`)
}

// TestPushToHubStrategies trains the tiny recipe once per hub_strategy. The end row also names
// the repository and pushes to a branch (the handbook's push_to_hub_revision); in the every_save
// row the first push during training fails, which loses nothing: training goes on, the
// checkpoint stays on disk and the final push still delivers the model.
func TestPushToHubStrategies(t *testing.T) {
	for _, tc := range []struct {
		strategy     string
		extra        []string
		repo, branch string
		failFirst    bool
		// want are paths the repository must hold besides the output directory's files.
		want []string
	}{
		{strategy: "end", extra: []string{"--hub_model_id=tiny-demo", "--push_to_hub_revision=true", "--hub_model_revision=v1.0"},
			repo: "alice/tiny-demo", branch: "v1.0"},
		{strategy: "every_save", failFirst: true},
		{strategy: "checkpoint", want: []string{"last-checkpoint/trainer_state.json", "last-checkpoint/optimizer.safetensors", "last-checkpoint/model.safetensors"}},
		{strategy: "all_checkpoints", want: []string{"checkpoint-2/trainer_state.json", "checkpoint-2/model.safetensors"}},
	} {
		t.Run(tc.strategy, func(t *testing.T) {
			s := hubtest.Start(t, "alice", "hf_alice")
			if tc.repo == "" {
				tc.repo, tc.branch = "alice/tiny-sft", "main" // output_dir's name under the token's user
			}
			if tc.failFirst {
				s.Fail(http.MethodPost, "/commit/main", http.StatusInternalServerError, 1, "")
			}
			out, res := tinyPushRun(t, append([]string{"--hub_strategy=" + tc.strategy, "--hub_private_repo=true"}, tc.extra...)...)
			assert.Equal(t, 4, res.Train.GlobalStep)
			assert.FileExists(t, filepath.Join(out, "checkpoint-4", "trainer_state.json"))
			assert.True(t, s.Private(tc.repo))
			assertPushedOutput(t, s, tc.repo, tc.branch, out, tc.strategy == "all_checkpoints")
			log := s.Log(tc.repo, tc.branch)
			assert.Equal(t, "End of training", log[len(log)-1])
			progress := slices.IndexFunc(log, func(m string) bool { return strings.HasPrefix(m, "Training in progress, step ") })
			switch {
			case tc.strategy == "end":
				assert.Equal(t, -1, progress, "hub_strategy end pushes once: %v", log)
				assert.NotContains(t, s.Files(tc.repo, "main"), "model.safetensors", "main is untouched")
			case !tc.failFirst:
				assert.GreaterOrEqual(t, progress, 0, "a save was pushed during training: %v", log)
			}
			if strings.Contains(tc.strategy, "checkpoint") {
				assert.True(t, slices.ContainsFunc(log, func(m string) bool { return strings.HasSuffix(m, ", checkpoint") }), "%v", log)
			}
			files := s.Files(tc.repo, tc.branch)
			for _, name := range tc.want {
				assert.Contains(t, files, name)
			}
			assert.NoDirExists(t, filepath.Join(out, "_hub_push"), "staging is cleaned up")
		})
	}
}

func TestPushToHubErrorsBeforeTraining(t *testing.T) {
	hubtest.Start(t, "alice", "hf_alice")
	t.Setenv("HF_TOKEN", "hf_wrong")
	r, err := LoadRecipe(tinyRecipe, TaskSFT, []string{"--max_steps=2", "--output_dir=" + t.TempDir(), "--push_to_hub=true"})
	require.NoError(t, err)
	_, err = Run(context.Background(), r, RunOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "push_to_hub")
	assert.Contains(t, err.Error(), "401 Unauthorized")
}

func TestPushCommand(t *testing.T) {
	s := hubtest.Start(t, "alice", "hf_alice")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"llama"}`), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "checkpoint-9"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "checkpoint-9", "x.json"), []byte(`{}`), 0o644))
	res, err := Push(context.Background(), dir, PushOptions{Repo: "m", Revision: "dev", Private: true, Message: "upload"})
	require.NoError(t, err)
	assert.Equal(t, "alice/m", res.Repo)
	assert.Equal(t, []string{"config.json"}, res.Committed)
	assert.True(t, s.Private("alice/m"))
	assert.Equal(t, []string{"initial commit", "upload"}, s.Log("alice/m", "dev"))
}

// TestOracleWandbRun trains the tiny recipe with report_to wandb and writes the expectation for
// tools/oracle/wandb_check.py into $WANDB_ORACLE_DIR (skipped without it): `wandb sync` must
// upload the run's config and every metrics.jsonl row (plus the end-of-training row) with equal
// values.
func TestOracleWandbRun(t *testing.T) {
	dir := os.Getenv("WANDB_ORACLE_DIR")
	if dir == "" {
		t.Skip("WANDB_ORACLE_DIR not set")
	}
	out := filepath.Join(dir, "tiny-sft")
	t.Setenv("WANDB_DIR", dir)
	t.Setenv("WANDB_PROJECT", "handbook-oracle")
	t.Setenv("WANDB_RUN_ID", "tinysft1")
	r, err := LoadRecipe(tinyRecipe, TaskSFT, []string{"--max_steps=6", "--logging_steps=2", "--eval_steps=3", "--save_steps=6",
		"--output_dir=" + out, "--report_to=wandb"})
	require.NoError(t, err)
	res, err := Run(context.Background(), r, RunOptions{})
	require.NoError(t, err)

	b, _, err := backend.New()
	require.NoError(t, err)
	m, err := model.Load(b, out, model.LoadOptions{})
	require.NoError(t, err)
	config, err := runConfig(r, m)
	require.NoError(t, err)
	raw, err := json.Marshal(config)
	require.NoError(t, err)
	var configJSON map[string]any
	require.NoError(t, json.Unmarshal(raw, &configJSON))

	var rows []map[string]float64
	summary := map[string]float64{}
	addRow := func(step float64, entry map[string]float64) {
		row := map[string]float64{"train/global_step": step}
		for k, v := range entry {
			switch {
			case k == "step":
			case slices.Contains([]string{"train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos"}, k):
				summary[k] = v
			default:
				row[wandb.TrainerKey(k)] = v
			}
		}
		rows = append(rows, row)
	}
	lines, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(lines)), "\n") {
		var entry map[string]float64
		require.NoError(t, json.Unmarshal([]byte(line), &entry))
		addRow(entry["step"], entry)
	}
	var final map[string]float64
	data, err := os.ReadFile(filepath.Join(out, "train_results.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &final))
	addRow(float64(res.Train.GlobalStep), final)
	runs, err := filepath.Glob(filepath.Join(dir, "wandb", "offline-run-*-tinysft1"))
	require.NoError(t, err)
	require.Len(t, runs, 1)
	expect := map[string]any{"run_dir": runs[0], "run_id": "tinysft1", "project": "handbook-oracle", "config": configJSON,
		"rows": rows, "summary": summary, "files": []string{"config_full.yaml"}}
	data, err = json.MarshalIndent(expect, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "expect.json"), data, 0o644))
}
