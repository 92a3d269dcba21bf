package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
