package train

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runInDir is what sft and dpo do with an output directory: open it (resume
// rules, lock, metrics sink), train, save the output.
func runInDir(t *testing.T, dir string, steps, saveSteps, limit int, overwrite bool) *OutputRun {
	t.Helper()
	m := loadFixture(t)
	t.Cleanup(m.Finalize)
	args := baseArgs(dir)
	args.MaxSteps, args.SaveSteps, args.SaveTotalLimit, args.LoggingSteps = steps, saveSteps, limit, 1
	e := &Engine{Model: m, Objective: CausalLM{}, Args: args}
	data := newTokenBatches(16, 8, 4, 1)
	out, err := e.OpenOutputDir(overwrite, data.Len())
	require.NoError(t, err)
	defer out.Close()
	if out.NothingToDo {
		return out
	}
	e.Sinks = append(e.Sinks, out.Sink())
	res, err := e.Train(context.Background(), data, nil)
	require.NoError(t, err)
	require.NoError(t, Output{Dir: dir, Model: m, SamplesPerStep: 4}.Save(res))
	out.Result = res
	return out
}

func loggedSteps(t *testing.T, dir string) []int {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, LogFile))
	require.NoError(t, err)
	defer f.Close()
	var steps []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct{ Step int }
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		steps = append(steps, e.Step)
	}
	return steps
}

func checkpoints(t *testing.T, dir string) []int {
	t.Helper()
	steps, _, err := scanCheckpoints(dir)
	require.NoError(t, err)
	return steps
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// TestStaleCheckpointNeverReplacesANewerModel replays the sequence at
// engine scale: a 12-step run with checkpoints, a 4-step rerun with
// overwrite_output_dir, then a 6-step rerun without it. The second run's
// history replaces the first's, and the third continues the second's.
func TestStaleCheckpointNeverReplacesANewerModel(t *testing.T) {
	dir := t.TempDir()
	runInDir(t, dir, 12, 2, 1, false)
	require.Equal(t, []int{12}, checkpoints(t, dir))
	stale, err := os.ReadFile(filepath.Join(dir, "checkpoint-12", "model.safetensors"))
	require.NoError(t, err)

	second := runInDir(t, dir, 4, 2, 1, true)
	assert.Contains(t, second.Removed, "checkpoint-12")
	assert.Equal(t, []int{4}, checkpoints(t, dir), "rotation kept a checkpoint of the overwritten run")
	assert.Equal(t, seq(1, 4), loggedSteps(t, dir))
	newer, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	require.NoError(t, err)
	assert.NotEqual(t, stale, newer)

	third := runInDir(t, dir, 6, 2, 1, false)
	assert.Equal(t, filepath.Join(dir, "checkpoint-4"), third.ResumedFrom)
	assert.Equal(t, 6, third.Result.GlobalStep)
	assert.Equal(t, 2, third.Result.StepsRun)
	assert.Equal(t, []int{6}, checkpoints(t, dir))
	assert.Equal(t, seq(1, 6), loggedSteps(t, dir), "metrics.jsonl repeats or misses steps")
	final, hasFinal, err := readFinalState(dir)
	require.NoError(t, err)
	require.True(t, hasFinal)
	assert.Equal(t, 6, final.GlobalStep)
}

// TestFinishedRunRerunChangesNothing: rerunning a finished run says so and
// leaves every file as it was.
func TestFinishedRunRerunChangesNothing(t *testing.T) {
	dir := t.TempDir()
	runInDir(t, dir, 4, 2, 0, false)
	before := snapshot(t, dir)
	again := runInDir(t, dir, 4, 2, 0, false)
	assert.True(t, again.NothingToDo)
	assert.Equal(t, 4, again.Result.GlobalStep)
	assert.Equal(t, before, snapshot(t, dir))
	shorter := runInDir(t, dir, 3, 2, 0, false)
	assert.True(t, shorter.NothingToDo, "a run asking for fewer steps than the directory holds has nothing to do")
	assert.Equal(t, before, snapshot(t, dir))
}

// snapshot maps every file under dir to its size and modification time.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			out[strings.TrimPrefix(path, dir)] = fmt.Sprint(info.Size(), info.ModTime().UnixNano())
		}
		return err
	}))
	return out
}

func TestOutputDirRefusals(t *testing.T) {
	t.Run("a final model newer than every checkpoint", func(t *testing.T) {
		dir := t.TempDir()
		runInDir(t, dir, 4, 2, 0, false)
		require.NoError(t, os.RemoveAll(filepath.Join(dir, "checkpoint-4")))
		m := loadFixture(t)
		defer m.Finalize()
		e := &Engine{Model: m, Objective: CausalLM{}, Args: Args{OutputDir: dir, LearningRate: 1e-3, MaxSteps: 8}}
		_, err := e.OpenOutputDir(false, 4)
		require.ErrorContains(t, err, "holds a model trained for 4 steps but its newest checkpoint is checkpoint-2")
		require.ErrorContains(t, err, "overwrite_output_dir=true")
	})
	t.Run("an incomplete newest checkpoint", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "checkpoint-5"), 0o755))
		e := &Engine{Args: Args{OutputDir: dir, MaxSteps: 8}}
		_, err := e.OpenOutputDir(false, 4)
		require.ErrorContains(t, err, filepath.Join(dir, "checkpoint-5")+" has no trainer_state.json")
	})
	t.Run("weights no run recorded", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "model.safetensors"), []byte("x"), 0o644))
		e := &Engine{Args: Args{OutputDir: dir, MaxSteps: 8}}
		_, err := e.OpenOutputDir(false, 4)
		require.ErrorContains(t, err, "holds model.safetensors but no trainer_state.json")
		out, err := e.OpenOutputDir(true, 4)
		require.NoError(t, err, "overwrite_output_dir starts over")
		require.NoError(t, out.Close())
	})
}

// TestResumeCutsMetricsBackToTheCheckpoint: entries logged after the checkpoint
// a run resumes from (a killed run's last steps) are dropped, not repeated.
func TestResumeCutsMetricsBackToTheCheckpoint(t *testing.T) {
	dir := t.TempDir()
	runInDir(t, dir, 4, 2, 0, false)
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "checkpoint-4")))
	for _, f := range finalFiles[:3] {
		require.NoError(t, os.Remove(filepath.Join(dir, f))) // killed before its output was written
	}
	f, err := os.OpenFile(filepath.Join(dir, LogFile), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"step": 5, "loss": 1}` + "\n" + `{"step": 6, "lo`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	again := runInDir(t, dir, 4, 2, 0, false)
	assert.Equal(t, filepath.Join(dir, "checkpoint-2"), again.ResumedFrom)
	assert.Equal(t, seq(1, 4), loggedSteps(t, dir))
}

func TestLockIsReentrantInAProcess(t *testing.T) {
	dir := t.TempDir()
	a, err := LockOutputDir(dir)
	require.NoError(t, err)
	b, err := LockOutputDir(dir)
	require.NoError(t, err)
	require.NoError(t, b.Release())
	_, err = os.Stat(filepath.Join(dir, LockFile))
	require.NoError(t, err, "the first holder still holds it")
	require.NoError(t, a.Release())
	_, err = os.Stat(filepath.Join(dir, LockFile))
	require.True(t, os.IsNotExist(err), "the last release removes the lock file")
}

// TestMain lets TestLockAcrossProcesses run this binary as a process that holds
// HANDBOOK_LOCK_DIR until it is killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("HANDBOOK_LOCK_DIR"); dir != "" {
		if _, err := LockOutputDir(dir); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestLockAcrossProcesses: a directory another process holds is refused with a
// message naming that process; once it is killed (no release), the lock is
// taken and reported stale.
func TestLockAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	require.NoError(t, err)
	holder := exec.Command(exe, "-test.run=^$", "holder")
	holder.Env = append(os.Environ(), "HANDBOOK_LOCK_DIR="+dir)
	stdout, err := holder.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, holder.Start())
	defer holder.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)

	_, err = LockOutputDir(dir)
	var locked *LockedError
	require.ErrorAs(t, err, &locked)
	assert.Contains(t, err.Error(), fmt.Sprintf("pid %d", holder.Process.Pid))
	assert.Contains(t, err.Error(), "holder", "the message quotes the holder's command line")

	require.NoError(t, holder.Process.Signal(syscall.SIGKILL))
	_ = holder.Wait()
	l, err := LockOutputDir(dir)
	require.NoError(t, err)
	assert.Contains(t, l.Stale, fmt.Sprintf("pid %d", holder.Process.Pid))
	require.NoError(t, l.Release())
}

// TestExclusiveLockFallback exercises the lock used where flock is missing: a
// live holder is refused, a dead one on this host is taken over.
func TestExclusiveLockFallback(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, LockFile)
	host, _ := os.Hostname()
	write := func(pid int) {
		data, err := json.Marshal(lockHolder{PID: pid, Host: host, Since: time.Now(), Command: "handbook sft x.yaml"})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, data, 0o644))
	}
	write(os.Getppid())
	_, err := acquireExclusive(dir, path)
	var locked *LockedError
	require.ErrorAs(t, err, &locked)
	assert.Contains(t, err.Error(), fmt.Sprintf("pid %d", os.Getppid()))

	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	write(dead.Process.Pid)
	e, err := acquireExclusive(dir, path)
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	h, ok := readHolder(data)
	require.True(t, ok)
	assert.Equal(t, os.Getpid(), h.PID)
	assert.Nil(t, e.f)
}
