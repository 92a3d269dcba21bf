package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// What a run finds in its output directory decides whether it resumes. The
// rules (transformers differs; see OpenOutputDir):
//
//  1. overwrite_output_dir starts a new history: the previous run's checkpoints,
//     trainer_state.json, results and metrics.jsonl are removed before the
//     first step, so rotation and resume never see them.
//  2. Otherwise the run resumes from the newest complete checkpoint, unless the
//     directory's final model (trainer_state.json) is newer than it: resuming
//     would then replace a newer model with an older one, so the run refuses.
//  3. A run whose newest checkpoint and final model are at the step it would
//     train to (or past it) is finished: it says so and writes nothing.
//  4. A checkpoint directory without trainer_state.json newer than the newest
//     complete one is an error naming it, never skipped silently.
//  5. metrics.jsonl keeps the entries up to the step resumed from.

// finalFiles are what a finished run leaves at the top of its output directory
// (besides weights), removed when a new history starts.
var finalFiles = []string{TrainerStateFile, "train_results.json", "all_results.json", LogFile}

// weightFiles mark a model saved at the top of an output directory.
var weightFiles = []string{"model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin"}

// OutputRun is a run's hold on its output directory: the lock, what it resumes
// from, and the metrics.jsonl sink. Close it when the run ends.
type OutputRun struct {
	Dir string
	// ResumedFrom is the checkpoint directory the engine was restored from ("" for a fresh start).
	ResumedFrom string
	// NothingToDo is set when the directory already holds this run, finished;
	// Result then describes it and nothing may be written.
	NothingToDo bool
	Result      Result
	// Removed lists what overwrite_output_dir removed of the previous history.
	Removed []string
	// StaleLock describes a previous run that died holding the directory's lock.
	StaleLock string
	lock      *OutputLock
	jsonl     *JSONLSink
}

// OpenOutputDir locks e.Args.OutputDir, applies the resume rules above for a run
// of TotalSteps(batchesPerEpoch) steps (restoring the engine from the checkpoint
// it picks), cuts metrics.jsonl back to that step and adds a sink appending to
// it. Where transformers differs: its rotation sorts checkpoint-* of every run
// in the directory together (by mtime, falling back to step numbers) and
// get_last_checkpoint picks the highest step number whoever wrote it, so a
// stale checkpoint of an earlier, longer run can be resumed and then saved over
// a newer model; overwrite_output_dir (gone in transformers 5) never removed
// anything.
func (e *Engine) OpenOutputDir(overwrite bool, batchesPerEpoch int) (*OutputRun, error) {
	dir := e.Args.OutputDir
	if dir == "" {
		return nil, fmt.Errorf("output_dir is required")
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("output_dir %s is a file", dir)
	}
	lock, err := LockOutputDir(dir)
	if err != nil {
		return nil, err
	}
	run := &OutputRun{Dir: dir, StaleLock: lock.Stale, lock: lock}
	if err := run.prepare(e, overwrite, e.TotalSteps(batchesPerEpoch)); err != nil {
		lock.Release()
		return nil, err
	}
	return run, nil
}

func (o *OutputRun) prepare(e *Engine, overwrite bool, total int) error {
	dir := o.Dir
	if overwrite {
		removed, err := removeHistory(dir)
		o.Removed = removed
		if err != nil {
			return err
		}
		return o.openLog(0)
	}
	complete, incomplete, err := scanCheckpoints(dir)
	if err != nil {
		return err
	}
	newest := -1
	if len(complete) > 0 {
		newest = complete[len(complete)-1]
	}
	for _, step := range incomplete {
		if step > newest {
			return fmt.Errorf("output_dir %s: %s has no %s, so it is not a complete checkpoint, and it is newer than "+
				"every complete one; remove it to resume from an earlier checkpoint, or set overwrite_output_dir=true",
				dir, filepath.Join(dir, checkpointName(step)), TrainerStateFile)
		}
	}
	final, hasFinal, err := readFinalState(dir)
	if err != nil {
		return err
	}
	switch {
	case hasFinal && final.GlobalStep > newest:
		if total <= final.GlobalStep {
			o.finished(final)
			return nil
		}
		from := "no checkpoint"
		if newest >= 0 {
			from = "its newest checkpoint is " + checkpointName(newest)
		}
		return fmt.Errorf("output_dir %s holds a model trained for %d steps but %s: continuing to %d steps would "+
			"replace it with an older one; set overwrite_output_dir=true to start over, or use another output_dir",
			dir, final.GlobalStep, from, total)
	case newest >= 0:
		if hasFinal && final.GlobalStep == newest && total <= newest {
			o.finished(final)
			return nil
		}
		o.ResumedFrom = filepath.Join(dir, checkpointName(newest))
		if err := e.Resume(o.ResumedFrom); err != nil {
			return err
		}
		return o.openLog(newest)
	}
	for _, f := range weightFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("output_dir %s holds %s but no %s or checkpoint says which run wrote it; refusing to "+
				"overwrite it: set overwrite_output_dir=true, or use another output_dir", dir, f, TrainerStateFile)
		}
	}
	return o.openLog(0)
}

// finished records a run found complete: nothing to train or write.
func (o *OutputRun) finished(final finalState) {
	o.NothingToDo = true
	o.Result = Result{GlobalStep: final.GlobalStep, NothingToDo: true, State: State{GlobalStep: final.GlobalStep, Epoch: final.Epoch,
		LogHistory: final.LogHistory, MaxSteps: final.MaxSteps}}
}

// openLog cuts metrics.jsonl back to step and opens it for appending.
func (o *OutputRun) openLog(step int) error {
	path := filepath.Join(o.Dir, LogFile)
	if err := truncateLog(path, step); err != nil {
		return err
	}
	s, err := NewJSONLSink(path)
	if err != nil {
		return err
	}
	o.jsonl = s
	return nil
}

// Sink is the metrics.jsonl sink (nil when NothingToDo).
func (o *OutputRun) Sink() Sink {
	if o.jsonl == nil {
		return nil
	}
	return o.jsonl
}

// Close closes metrics.jsonl and releases the lock.
func (o *OutputRun) Close() error {
	var err error
	if o.jsonl != nil {
		err = o.jsonl.Close()
	}
	return errors.Join(err, o.lock.Release())
}

// finalState is the part of a finished run's trainer_state.json the rules read.
type finalState struct {
	GlobalStep int                  `json:"global_step"`
	Epoch      float64              `json:"epoch"`
	MaxSteps   int                  `json:"max_steps"`
	LogHistory []map[string]float64 `json:"log_history"`
}

func readFinalState(dir string) (finalState, bool, error) {
	var st finalState
	data, err := os.ReadFile(filepath.Join(dir, TrainerStateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("output_dir: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, false, fmt.Errorf("output_dir %s: %w", filepath.Join(dir, TrainerStateFile), err)
	}
	return st, true, nil
}

// removeHistory removes a previous run's checkpoints, state, results and
// metrics (not its weights, which the new run's output replaces) and returns
// what it removed. The state goes first: killed half-way, the directory then
// resumes the old run's remaining checkpoints, not a mix.
func removeHistory(dir string) ([]string, error) {
	var removed []string
	for _, f := range finalFiles {
		p := filepath.Join(dir, f)
		if err := os.Remove(p); err == nil {
			removed = append(removed, f)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("overwrite_output_dir: %w", err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return removed, fmt.Errorf("overwrite_output_dir: %w", err)
	}
	for _, en := range entries {
		name := en.Name()
		isCheckpoint := strings.HasPrefix(name, checkpointPrefix) && isStep(strings.TrimPrefix(name, checkpointPrefix))
		isPartial := strings.HasPrefix(name, "."+checkpointPrefix) && strings.HasSuffix(name, ".tmp")
		if !en.IsDir() || !isCheckpoint && !isPartial {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return removed, fmt.Errorf("overwrite_output_dir: %w", err)
		}
		removed = append(removed, name)
	}
	return removed, nil
}

func isStep(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && strconv.Itoa(n) == s
}

// truncateLog keeps the metrics.jsonl entries logged at or before step (the
// ones a resumed run would otherwise log twice), rewriting the file atomically.
func truncateLog(path string, step int) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("metrics log: %w", err)
	}
	var kept bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var entry struct{ Step *float64 }
		if json.Unmarshal(sc.Bytes(), &entry) != nil || entry.Step == nil {
			continue // a line torn by a kill
		}
		if int(*entry.Step) <= step {
			kept.Write(sc.Bytes())
			kept.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("metrics log %s: %w", path, err)
	}
	if kept.Len() == len(data) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, kept.Bytes(), 0o644); err != nil {
		return fmt.Errorf("metrics log: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("metrics log: %w", err)
	}
	return nil
}
