package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"

	"handbook/model"
	"handbook/safetensors"
)

// Checkpoint files besides the weights. Optimizer state goes to safetensors (not torch's
// optimizer.pt pickle), named <state>/<weight> with torch's state keys (exp_avg/…, exp_avg_sq/…),
// plus master/<weight> for the float32 master copy of a weight stored in 16 bits (DeepSpeed keeps
// it with the optimizer state too), so a bf16 run resumes bit-exactly.
const (
	TrainerStateFile = "trainer_state.json"
	OptimizerFile    = "optimizer.safetensors"
	checkpointPrefix = "checkpoint-"
	masterKey        = "master/"
)

// trainerState is transformers' trainer_state.json, plus the data position needed to resume.
type trainerState struct {
	BestGlobalStep      *int                 `json:"best_global_step"`
	BestMetric          *float64             `json:"best_metric"`
	BestModelCheckpoint *string              `json:"best_model_checkpoint"`
	Epoch               float64              `json:"epoch"`
	EvalSteps           int                  `json:"eval_steps"`
	GlobalStep          int                  `json:"global_step"`
	IsHyperParamSearch  bool                 `json:"is_hyper_param_search"`
	IsLocalProcessZero  bool                 `json:"is_local_process_zero"`
	IsWorldProcessZero  bool                 `json:"is_world_process_zero"`
	LogHistory          []map[string]float64 `json:"log_history"`
	LoggingSteps        int                  `json:"logging_steps"`
	MaxSteps            int                  `json:"max_steps"`
	NumInputTokensSeen  float64              `json:"num_input_tokens_seen"`
	SaveSteps           int                  `json:"save_steps"`
	TotalFlos           float64              `json:"total_flos"`
	DataPosition        struct {
		Epoch int `json:"epoch"`
		Index int `json:"index"`
	} `json:"handbook_data_position"`
}

// SaveCheckpoint writes output_dir/checkpoint-N (weights, optimizer moments, trainer_state.json)
// through a temporary directory and a rename, so a kill at any moment leaves the previous
// checkpoint intact; then it removes the oldest checkpoints beyond SaveTotalLimit.
func (e *Engine) SaveCheckpoint() error {
	final := filepath.Join(e.Args.OutputDir, checkpointName(e.state.GlobalStep))
	tmp := filepath.Join(e.Args.OutputDir, "."+filepath.Base(final)+".tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("checkpoint %s: %w", final, err)
	}
	if err := e.writeCheckpoint(tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("checkpoint %s: %w", final, err)
	}
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("checkpoint %s: %w", final, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("checkpoint %s: %w", final, err)
	}
	return e.rotateCheckpoints()
}

func (e *Engine) writeCheckpoint(dir string) error {
	if a := e.adapter(); a != nil {
		if err := a.SaveWeights(dir); err != nil {
			return err
		}
	} else if err := e.Model.Save(dir, model.SaveOptions{}); err != nil {
		return err
	}
	var sources []safetensors.Source
	names := e.Args.Optimizer.StateNames()
	for i, n := range e.trainable {
		for j, t := range e.optState[i] {
			vals, err := tensors.CopyFlatData[float32](t)
			if err != nil {
				return fmt.Errorf("optimizer state of %s: %w", n, err)
			}
			sources = append(sources, safetensors.Float32Source(names[j]+"/"+n, t.Shape().Dimensions, vals))
		}
		if m := e.masters[i]; m != nil {
			vals, err := tensors.CopyFlatData[float32](m)
			if err != nil {
				return fmt.Errorf("float32 master of %s: %w", n, err)
			}
			sources = append(sources, safetensors.Float32Source(masterKey+n, m.Shape().Dimensions, vals))
		}
	}
	if err := safetensors.Save(filepath.Join(dir, OptimizerFile), sources, nil); err != nil {
		return err
	}
	st := trainerState{
		Epoch: e.state.Epoch, EvalSteps: e.Args.EvalSteps, GlobalStep: e.state.GlobalStep,
		IsLocalProcessZero: true, IsWorldProcessZero: true, LogHistory: e.state.LogHistory,
		LoggingSteps: e.Args.LoggingSteps, MaxSteps: e.state.MaxSteps, NumInputTokensSeen: e.state.TotalTokens,
		SaveSteps: e.Args.SaveSteps,
	}
	if st.LogHistory == nil {
		st.LogHistory = []map[string]float64{}
	}
	st.DataPosition.Epoch, st.DataPosition.Index = e.state.NextEpoch, e.state.NextIndex
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, TrainerStateFile), data, 0o644)
}

// rotateCheckpoints keeps the newest SaveTotalLimit checkpoints, by step. Only
// checkpoints older than the one just written are removed: OpenOutputDir leaves
// none of another history behind, and one at a later step would not be this
// run's to delete.
func (e *Engine) rotateCheckpoints() error {
	if e.Args.SaveTotalLimit <= 0 {
		return nil
	}
	steps, _, err := scanCheckpoints(e.Args.OutputDir)
	if err != nil {
		return err
	}
	var older []int
	for _, s := range steps {
		if s < e.state.GlobalStep {
			older = append(older, s)
		}
	}
	for len(older) > e.Args.SaveTotalLimit-1 {
		old := filepath.Join(e.Args.OutputDir, checkpointName(older[0]))
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("removing old checkpoint %s: %w", old, err)
		}
		older = older[1:]
	}
	return nil
}

func checkpointName(step int) string { return checkpointPrefix + strconv.Itoa(step) }

// scanCheckpoints lists the steps of dir's checkpoint-N directories, ascending:
// complete ones (with trainer_state.json, written last through a rename) and
// incomplete ones (not written by this engine, or damaged).
func scanCheckpoints(dir string) (complete, incomplete []int, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, en := range entries {
		name := en.Name()
		if !en.IsDir() || !strings.HasPrefix(name, checkpointPrefix) || !isStep(strings.TrimPrefix(name, checkpointPrefix)) {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(name, checkpointPrefix))
		if _, err := os.Stat(filepath.Join(dir, name, TrainerStateFile)); err == nil {
			complete = append(complete, n)
		} else {
			incomplete = append(incomplete, n)
		}
	}
	sort.Ints(complete)
	sort.Ints(incomplete)
	return complete, incomplete, nil
}

// LastCheckpoint returns the newest complete checkpoint directory in outputDir, or "" when there
// is none (transformers' get_last_checkpoint). OpenOutputDir decides whether a run resumes from it.
func LastCheckpoint(outputDir string) (string, error) {
	steps, _, err := scanCheckpoints(outputDir)
	if err != nil || len(steps) == 0 {
		return "", err
	}
	return filepath.Join(outputDir, checkpointName(steps[len(steps)-1])), nil
}

// Resume restores weights, optimizer moments, step, data position and log history from a
// checkpoint directory, so Train continues exactly where the checkpointed run was.
func (e *Engine) Resume(dir string) error {
	e.Args.setDefaults()
	var w map[string]*tensors.Tensor
	var err error
	if a := e.adapter(); a != nil {
		w, err = a.LoadWeights(dir)
	} else {
		w, err = model.LoadWeights(dir, e.Model.Config, e.Model.DType())
	}
	if err != nil {
		return fmt.Errorf("resume from %s: %w", dir, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, TrainerStateFile))
	if err != nil {
		return fmt.Errorf("resume from %s: %w", dir, err)
	}
	var st trainerState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("resume from %s: %s: %w", dir, TrainerStateFile, err)
	}
	opt, err := safetensors.Open(filepath.Join(dir, OptimizerFile))
	if err != nil {
		return fmt.Errorf("resume from %s: %w", dir, err)
	}
	defer opt.Close()
	for n, t := range w {
		e.Model.Weights[n] = t
	}
	e.optState, e.masters = nil, nil
	names := e.Args.Optimizer.StateNames()
	for _, n := range e.Model.Weights.Names() {
		if !e.isTrainable(n) {
			continue
		}
		state := make([]*tensors.Tensor, len(names))
		for j, sn := range names {
			t, err := opt.Tensor(sn + "/" + n)
			if err != nil {
				return fmt.Errorf("resume from %s: %w", dir, err)
			}
			vals, err := t.Float32s()
			if err != nil {
				return fmt.Errorf("resume from %s: %w", dir, err)
			}
			state[j] = tensors.FromFlatDataAndDimensions(vals, t.Shape...)
		}
		e.optState = append(e.optState, state)
		var master *tensors.Tensor
		if needsMaster(e.Model.Weights[n].DType()) {
			t, err := opt.Tensor(masterKey + n)
			if err != nil {
				return fmt.Errorf("resume from %s: %w", dir, err)
			}
			vals, err := t.Float32s()
			if err != nil {
				return fmt.Errorf("resume from %s: %w", dir, err)
			}
			master = tensors.FromFlatDataAndDimensions(vals, t.Shape...)
		}
		e.masters = append(e.masters, master)
	}
	e.state = State{
		GlobalStep: st.GlobalStep, Epoch: st.Epoch, NextEpoch: st.DataPosition.Epoch, NextIndex: st.DataPosition.Index,
		LogHistory: st.LogHistory, MaxSteps: st.MaxSteps, TotalTokens: st.NumInputTokensSeen,
	}
	return nil
}
