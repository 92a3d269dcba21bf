package sft_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"handbook/backend"
	"handbook/data"
	"handbook/model"
	"handbook/sft"
	"handbook/train"
)

// Example fine-tunes every weight of a small Llama (full SFT) for a few steps on two sequences
// whose first tokens are a prompt, masked out of the loss. The zero Config fields are TRL's
// SFTConfig defaults; the output directory is what transformers' Trainer leaves.
func Example() {
	ctx := context.Background()
	b, _, err := backend.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := model.Load(b, "../testdata/models/llama_gqa", model.LoadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Finalize()

	// data.Tokenize makes these from conversations; here the token ids are written out.
	prompt := []int32{1, 10, 11, 12}
	var samples []data.Sample
	for _, completion := range [][]int32{{20, 21, 22, 2}, {30, 31, 2}} {
		ids := append(slices.Clone(prompt), completion...)
		labels := slices.Clone(ids)
		for i := range prompt {
			labels[i] = data.IgnoreIndex
		}
		samples = append(samples, data.Sample{InputIDs: ids, Labels: labels})
	}

	out, err := os.MkdirTemp("", "sft-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(out)
	var losses []float64
	trainer := &sft.Trainer{Model: m, TrainSet: samples,
		Config:   sft.Config{Args: train.Args{OutputDir: out, MaxSteps: 8, LearningRate: 1e-2}},
		Progress: func(_, _ int, loss float64) { losses = append(losses, loss) }}
	res, err := trainer.Train(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("optimizer steps:", res.GlobalStep)
	fmt.Println("loss at least halved:", losses[len(losses)-1] < losses[0]/2)
	for _, f := range []string{"config.json", "model.safetensors", "trainer_state.json", "train_results.json"} {
		_, err := os.Stat(filepath.Join(out, f))
		fmt.Println(f, err == nil)
	}
	// Output:
	// optimizer steps: 8
	// loss at least halved: true
	// config.json true
	// model.safetensors true
	// trainer_state.json true
	// train_results.json true
}
