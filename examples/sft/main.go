// Command sft trains the tiny demo chat model with the library API alone — no YAML — the same run
// as `handbook sft recipes/tiny/sft/config_full.yaml`: a from-scratch tiny Llama learns short
// arithmetic and string tasks, and held-out exact match is reported before and after.
//
//	go run ./examples/sft [-out DIR] [-steps N]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"handbook/backend"
	"handbook/data"
	"handbook/model"
	"handbook/sft"
	"handbook/tokenizer"
	"handbook/train"
)

func main() {
	out := flag.String("out", "out/examples-sft", "output directory")
	steps := flag.Int("steps", 400, "optimizer steps")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *out, *steps); err != nil {
		fmt.Fprintln(os.Stderr, "sft:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out string, steps int) error {
	b, sel, err := backend.New()
	if err != nil {
		return err
	}
	fmt.Println(sel)
	const modelDir, dataDir = "recipes/tiny/model", "recipes/tiny/data/sft"
	m, err := model.Init(b, modelDir, 0, 42) // config.json only: a from-scratch model
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(modelDir)
	if err != nil {
		return err
	}
	tmpl, err := tok.ChatTemplate("")
	if err != nil {
		return err
	}
	mix, err := data.MixtureConfig{Datasets: []data.DatasetConfig{{ID: dataDir, Split: "train", Columns: []string{"messages"}}}}.
		Load(ctx, data.LocalLoader{}, nil)
	if err != nil {
		return err
	}
	testSrc, err := data.OpenDir(dataDir, "", "test")
	if err != nil {
		return err
	}
	heldOut, err := conversations(ctx, testSrc, 200)
	if err != nil {
		return err
	}
	samples, stats, err := data.Tokenize(ctx, mix.Train, data.TokenizeConfig{Tokenizer: tok, Template: tmpl, AssistantOnlyLoss: true})
	if err != nil {
		return err
	}
	fmt.Printf("%d training samples (%d without a trainable token)\n", len(samples), stats.NoTrainable)

	before, err := sft.ExactMatch(ctx, m, tok, tmpl, heldOut, 8)
	if err != nil {
		return err
	}
	fmt.Printf("held-out exact match before training: %.1f%%\n", 100*before)
	trainer := &sft.Trainer{Model: m, TrainSet: samples, TokenizerDir: modelDir,
		Config: sft.Config{
			Args: train.Args{OutputDir: out, LearningRate: 2e-3, LRSchedulerType: "cosine", WarmupSteps: 0.05,
				MaxSteps: steps, MaxGradNorm: 1, LoggingSteps: 25, Seed: 42, DataSeed: 42, Optimizer: train.AdamW{Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, WeightDecay: 0.01}},
			PerDeviceTrainBatchSize: 32, PadID: int32(tok.PAD.ID), PadToMultipleOf: 16, OverwriteOutputDir: true,
		},
		Progress: func(step, total int, loss float64) {
			if step%25 == 0 || step == total {
				fmt.Printf("step %d/%d loss %.4f\n", step, total, loss)
			}
		},
	}
	res, err := trainer.Train(ctx)
	if err != nil {
		return err
	}
	after, err := sft.ExactMatch(ctx, m, tok, tmpl, heldOut, 8)
	if err != nil {
		return err
	}
	fmt.Printf("trained %d steps in %s (%.0f tokens/s); held-out exact match after training: %.1f%%\n",
		res.GlobalStep, res.Runtime.Round(1e9), res.TokensPerSec, 100*after)
	return nil
}

// conversations reads up to n rows' "messages".
func conversations(ctx context.Context, src data.Source, n int) ([][]tokenizer.Message, error) {
	var out [][]tokenizer.Message
	err := src.Scan(ctx, func(i int, row data.Row) error {
		if len(out) == n {
			return nil
		}
		ex, err := data.ParseRow(row, data.FormatMessages, data.ParseOptions{})
		if err != nil {
			return err
		}
		out = append(out, ex.Messages)
		return nil
	})
	return out, err
}
