package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets a test run the CLI as a child process (the test binary re-executed with
// HANDBOOK_RUN_CLI=1), so it can be killed like a real run.
func TestMain(m *testing.M) {
	if os.Getenv("HANDBOOK_RUN_CLI") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func cliProcess(t *testing.T, args ...string) *exec.Cmd {
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "HANDBOOK_RUN_CLI=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(stderr.String())
		}
	})
	return cmd
}

// TestSFTKillAndResume kills `handbook sft` with SIGKILL after its step-10 checkpoint and runs the
// same command again: the resumed run must end with exactly the weights of an uninterrupted one.
func TestSFTKillAndResume(t *testing.T) {
	t.Chdir("../..")
	base := []string{"sft", "recipes/tiny/sft/config_full.yaml", "--max_steps=30", "--save_steps=10", "--save_total_limit=0", "--per_device_train_batch_size=8",
		"--eval_strategy=no", "--overwrite_output_dir=false", "--report_to=none"}
	straight, killed := t.TempDir(), t.TempDir()

	require.NoError(t, cliProcess(t, append(base, "--output_dir="+straight)...).Run())

	first := cliProcess(t, append(base, "--output_dir="+killed)...)
	require.NoError(t, first.Start())
	ckpt := filepath.Join(killed, "checkpoint-10")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(ckpt); err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "no checkpoint-10 after 2 minutes")
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, first.Process.Kill())
	_ = first.Wait()
	_, err := os.Stat(filepath.Join(killed, "model.safetensors"))
	require.True(t, os.IsNotExist(err), "the first run finished before it was killed; the test proves nothing")

	require.NoError(t, cliProcess(t, append(base, "--output_dir="+killed)...).Run())
	want := must(os.ReadFile(filepath.Join(straight, "model.safetensors")))
	got := must(os.ReadFile(filepath.Join(killed, "model.safetensors")))
	assert.True(t, bytes.Equal(want, got), "resumed weights differ from the uninterrupted run")
}

// TestTwoRunsOneDirectory starts `handbook sft` and, while it runs, a second one on the same
// output_dir: the second is refused naming the first, the first ends with a clean history.
// Rerunning the finished command changes nothing; asking for more steps resumes from the last
// checkpoint and says so.
func TestTwoRunsOneDirectory(t *testing.T) {
	t.Chdir("../..")
	dir := filepath.Join(t.TempDir(), "out")
	base := []string{"sft", "recipes/tiny/sft/config_full.yaml", "--save_steps=2", "--save_total_limit=1", "--per_device_train_batch_size=8",
		"--eval_strategy=no", "--overwrite_output_dir=false", "--report_to=none", "--logging_steps=1", "--output_dir=" + dir}

	first := cliProcess(t, append(base, "--max_steps=6")...)
	require.NoError(t, first.Start())
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(dir, ".handbook.lock")); err == nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "the first run never locked its output_dir")
		time.Sleep(5 * time.Millisecond)
	}
	second := cliProcess(t, append(base, "--max_steps=6")...)
	var secondErr bytes.Buffer
	second.Stderr = &secondErr
	require.Error(t, second.Run(), "a second run on a locked output_dir must fail")
	assert.Contains(t, secondErr.String(), "is in use by another run")
	assert.Contains(t, secondErr.String(), fmt.Sprintf("pid %d", first.Process.Pid))
	require.NoError(t, first.Wait())
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6}, metricSteps(t, dir))

	before := dirState(t, dir)
	var out bytes.Buffer
	again := cliProcess(t, append(base, "--max_steps=6")...)
	again.Stdout = &out
	require.NoError(t, again.Run())
	assert.Contains(t, out.String(), "already holds this run, finished at step 6: nothing to do")
	assert.Equal(t, before, dirState(t, dir), "rerunning a finished run changed the output directory")

	out.Reset()
	var errOut bytes.Buffer
	longer := cliProcess(t, append(base, "--max_steps=8")...)
	longer.Stdout, longer.Stderr = &out, &errOut
	require.NoError(t, longer.Run())
	assert.Contains(t, errOut.String(), "resuming from checkpoint-6")
	assert.NotContains(t, errOut.String(), "initializing from scratch")
	assert.Contains(t, out.String(), "resumed from checkpoint-6 and trained to step 8 (2 steps)")
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8}, metricSteps(t, dir))
}

func metricSteps(t *testing.T, dir string) []int {
	t.Helper()
	var steps []int
	for _, line := range strings.Split(strings.TrimSpace(string(must(os.ReadFile(filepath.Join(dir, "metrics.jsonl"))))), "\n") {
		var e struct{ Step int }
		require.NoError(t, json.Unmarshal([]byte(line), &e))
		steps = append(steps, e.Step)
	}
	return steps
}

// dirState maps each file under dir to its size and modification time.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	require.NoError(t, filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			state[path] = fmt.Sprint(info.Size(), info.ModTime().UnixNano())
		}
		return err
	}))
	return state
}
