package train

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"

	"handbook/model"
)

// Output is what a finished run leaves at output_dir besides its checkpoints, as transformers'
// Trainer does: the final weights, the tokenizer files, train_results.json, all_results.json and
// trainer_state.json.
type Output struct {
	Dir   string
	Model *model.Model
	// Weights, when set, saves the weights instead of the whole model (a LoRA adapter); a nil
	// pointer in it counts as unset (see OrNil).
	Weights WeightsIO
	// TokenizerDir, when set, is where tokenizer.json, tokenizer_config.json, … are copied from.
	TokenizerDir string
	// SamplesPerStep is the examples one optimizer step consumes (batch size × accumulation).
	SamplesPerStep int
}

// Save writes the output of a run that ended with res.
func (o Output) Save(res Result) error {
	if w := OrNil(o.Weights); w != nil {
		if err := w.SaveWeights(o.Dir); err != nil {
			return err
		}
	} else if err := o.Model.Save(o.Dir, model.SaveOptions{}); err != nil {
		return err
	}
	if o.TokenizerDir != "" {
		for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"} {
			if err := copyIfExists(filepath.Join(o.TokenizerDir, f), filepath.Join(o.Dir, f)); err != nil {
				return err
			}
		}
	}
	results := map[string]float64{"epoch": res.State.Epoch, "train_loss": res.TrainLoss, "total_flos": 0,
		"train_runtime": res.Runtime.Seconds(), "train_samples_per_second": 0, "train_steps_per_second": 0,
		"train_tokens_per_second": res.TokensPerSec}
	if res.StepsRun > 0 {
		// The speed of the steps this run took; transformers divides all steps, resumed ones included.
		steps, secs := float64(res.StepsRun), max(res.Runtime.Seconds(), 1e-9)
		results["train_samples_per_second"] = steps * float64(o.SamplesPerStep) / secs
		results["train_steps_per_second"] = steps / secs
	} else {
		// Resumed at its last step (the previous run ended before writing its output): the
		// loss is the mean of the logged ones.
		results["train_loss"] = meanLoggedLoss(res.State.LogHistory)
	}
	for _, name := range []string{"train_results.json", "all_results.json"} {
		if err := writeJSON(filepath.Join(o.Dir, name), results); err != nil {
			return err
		}
	}
	return writeJSON(filepath.Join(o.Dir, TrainerStateFile), map[string]any{
		"global_step": res.GlobalStep, "epoch": res.State.Epoch, "log_history": res.State.LogHistory, "max_steps": res.State.MaxSteps,
	})
}

func meanLoggedLoss(history []map[string]float64) float64 {
	var sum float64
	var n int
	for _, entry := range history {
		if loss, ok := entry["loss"]; ok {
			sum += loss
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func copyIfExists(src, dst string) error {
	in, err := os.Open(src)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
