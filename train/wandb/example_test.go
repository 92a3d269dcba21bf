package wandb_test

import (
	"fmt"
	"os"
	"path/filepath"

	"handbook/train/wandb"
)

// A run that transformers' WandbCallback would have logged: one training row, then the
// end-of-training summary.
func Example() {
	dir, _ := os.MkdirTemp("", "wandb")
	defer os.RemoveAll(dir)
	run, err := wandb.Create(wandb.Options{Dir: dir, Project: "handbook", Name: "tiny-sft", ID: "example1",
		Config: map[string]any{"learning_rate": 2e-3}})
	if err != nil {
		fmt.Println(err)
		return
	}
	run.Log(10, map[string]float64{"loss": 2.5, "learning_rate": 2e-3, "epoch": 0.5, "step": 10})
	run.Log(20, map[string]float64{"train_loss": 2.4, "train_runtime": 3.5})
	if err := run.Finish(0); err != nil {
		fmt.Println(err)
		return
	}
	files, _ := filepath.Glob(filepath.Join(dir, "wandb", "offline-run-*", "run-example1.wandb"))
	fmt.Println(len(files), wandb.TrainerKey("eval_loss"), wandb.TrainerKey("loss"))
	// Output: 1 eval/loss train/loss
}
