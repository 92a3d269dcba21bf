package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// slurmCluster starts the one-node Slurm cluster of tools/slurm-localhost.sh (stopping it again
// when the test started it) and returns the environment for sbatch. Without Slurm the test is
// skipped, except in CI, where .ci/run installs it.
func slurmCluster(t *testing.T) []string {
	if _, err := exec.LookPath("sbatch"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sbatch not found: .ci/run installs Slurm with tools/slurm-localhost.sh install")
		}
		t.Skip("Slurm is not installed (tools/slurm-localhost.sh install)")
	}
	script, err := filepath.Abs("../../tools/slurm-localhost.sh")
	require.NoError(t, err)
	dir := filepath.Join(os.TempDir(), "handbook-slurm-test")
	env := append(os.Environ(), "HANDBOOK_SLURM_DIR="+dir)
	wasUp := exec.Command("sinfo", "-h").Run() == nil && os.Getenv("SLURM_CONF") == filepath.Join(dir, "slurm.conf")
	out, err := (&exec.Cmd{Path: script, Args: []string{script, "start"}, Env: env}).CombinedOutput()
	require.NoError(t, err, "%s", out)
	if !wasUp {
		t.Cleanup(func() { (&exec.Cmd{Path: script, Args: []string{script, "stop"}, Env: env}).Run() })
	}
	return append(env, "SLURM_CONF="+filepath.Join(dir, "slurm.conf"))
}

// slurmWorkspace is a repository root for launch.slurm: the script, the tiny recipe and a
// one-process accelerate config (the seed's configs ask for 8 GPUs).
func slurmWorkspace(t *testing.T) string {
	work := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(work, "recipes", "accelerate_configs"), 0o755))
	script, err := os.ReadFile("../../recipes/launch.slurm")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(work, "recipes", "launch.slurm"), script, 0o755))
	tiny, err := filepath.Abs("../../recipes/tiny")
	require.NoError(t, err)
	require.NoError(t, os.Symlink(tiny, filepath.Join(work, "recipes", "tiny")))
	require.NoError(t, os.WriteFile(filepath.Join(work, "recipes", "accelerate_configs", "single.yaml"),
		[]byte("compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nnum_machines: 1\nnum_processes: 1\nmixed_precision: 'no'\n"), 0o644))
	return work
}

// buildHandbook builds the CLI for the jobs to run.
func buildHandbook(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "handbook")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestLaunchSlurm runs `sbatch --wait recipes/launch.slurm tiny sft full …` on a real Slurm
// cluster: the job trains the tiny recipe to a finished output directory, and a failing job's
// exit code reaches sbatch.
func TestLaunchSlurm(t *testing.T) {
	env := slurmCluster(t)
	work := slurmWorkspace(t)
	bin := buildHandbook(t)
	env = append(env, "HANDBOOK="+bin, "GOMLX_BACKEND=go")
	sbatch := func(args ...string) (string, error) {
		cmd := exec.Command("sbatch", append([]string{"--wait", "--job-name=handbook_sft", "--nodes=1", "--output=job-%j.out",
			"recipes/launch.slurm", "tiny", "sft", "full", "single"}, args...)...)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		logs, _ := filepath.Glob(filepath.Join(work, "job-*.out"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			out = append(out, data...)
			os.Remove(l)
		}
		return string(out), err
	}

	out, err := sbatch("--max_steps=3 --save_steps=3 --logging_steps=1 --eval_strategy=no --output_dir=out/slurm-sft")
	require.NoError(t, err, out)
	assert.Contains(t, out, "launch.slurm: "+bin+" sft recipes/tiny/sft/config_full.yaml --config_file=recipes/accelerate_configs/single.yaml --max_steps=3")
	assert.Contains(t, out, "trained 3 steps")
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "README.md", "train_results.json"} {
		assert.FileExists(t, filepath.Join(work, "out", "slurm-sft", f))
	}
	var state struct {
		GlobalStep int `json:"global_step"`
	}
	data, err := os.ReadFile(filepath.Join(work, "out", "slurm-sft", "trainer_state.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &state))
	assert.Equal(t, 3, state.GlobalStep)

	out, err = sbatch("--learning_rate=fast", "--output_dir=out/failing")
	assert.Equal(t, 1, exitCode(err), "handbook's exit code reaches sbatch --wait:\n%s", out)
	assert.Contains(t, out, "override --learning_rate=fast: want a number")

	cmd := exec.Command("sbatch", "--wait", "--output=job-%j.out", "recipes/launch.slurm", "tiny", "sft", "qlora", "single")
	cmd.Dir, cmd.Env = work, env
	_, err = cmd.CombinedOutput()
	assert.Equal(t, 2, exitCode(err), "a missing recipe fails the job")
}

// More than one node fails with a message until multi-host training exists.
func TestLaunchSlurmRefusesSeveralNodes(t *testing.T) {
	work := slurmWorkspace(t)
	cmd := exec.Command("bash", "recipes/launch.slurm", "tiny", "sft", "full", "single")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "SLURM_NNODES=2", "HANDBOOK=/nonexistent")
	out, err := cmd.CombinedOutput()
	assert.Equal(t, 2, exitCode(err))
	assert.True(t, strings.Contains(string(out), "--nodes=2: multi-node training is not available yet"), "%s", out)
}
