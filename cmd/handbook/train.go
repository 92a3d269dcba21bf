package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/schollz/progressbar/v3"

	"handbook"
)

// trainCommand is `handbook sft|dpo|orpo RECIPE.yaml [--key=value …]`, the handbook's
// run_sft.py / run_dpo.py / run_orpo.py. The CLI-only flag --exact_match=N scores N held-out
// conversations before and after training.
func trainCommand(task handbook.Task, config string) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return runTraining(ctx, task, config, args, stdout, stderr)
	}
}

func runTraining(ctx context.Context, task handbook.Task, config string, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintf(stderr, "usage: handbook %s RECIPE.yaml [--key=value …] [--exact_match=N]\n\n"+
			"Keys are the recipe's (transformers TrainingArguments, TRL %s, model and data arguments).\n"+
			"--exact_match=N reports greedy exact match on N held-out conversations before and after training.\n", task, config)
		return flag.ErrHelp
	}
	flags, rest, err := takeFlags(args, []string{"exact_match"}, nil)
	if err != nil {
		return err
	}
	exact, err := countFlag(flags, "exact_match", 0)
	if err != nil {
		return err
	}
	path, overrides, err := handbook.ParseArgs(rest)
	if err != nil {
		return err
	}
	recipe, err := handbook.LoadRecipe(path, task, overrides)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	var bar *progressbar.ProgressBar
	progress := func(step, total int, loss float64) {
		if bar == nil {
			bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription(string(task)),
				progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
		}
		bar.Describe(fmt.Sprintf("%s loss %.4f", task, loss))
		_ = bar.Set(step)
	}
	if f, ok := stderr.(*os.File); !ok || !isTerminal(f) {
		progress = func(step, total int, loss float64) {
			if step == 1 || step%50 == 0 || step == total {
				fmt.Fprintf(stderr, "step %d/%d loss %.4f\n", step, total, loss)
			}
		}
	}
	res, err := handbook.Run(ctx, recipe, handbook.RunOptions{Logger: logger, Progress: progress, ExactMatch: exact})
	if err != nil {
		return err
	}
	if res.Train.NothingToDo {
		fmt.Fprintf(stdout, "%s already holds this run, finished at step %d: nothing to do (overwrite_output_dir=true trains it again)\n",
			res.OutputDir, res.Train.GlobalStep)
		return nil
	}
	what := fmt.Sprintf("trained %d steps", res.Train.GlobalStep)
	if res.ResumedFrom != "" {
		what = fmt.Sprintf("resumed from %s and trained to step %d (%d steps)", filepath.Base(res.ResumedFrom), res.Train.GlobalStep, res.Train.StepsRun)
	}
	fmt.Fprintf(stdout, "%s in %s (%.0f tokens/s), train loss %.4f; model saved to %s\n",
		what, res.Train.Runtime.Round(1e8), res.Train.TokensPerSec, res.Train.TrainLoss, res.OutputDir)
	if res.ExactMatchBefore != nil && res.ExactMatchAfter != nil {
		fmt.Fprintf(stdout, "held-out exact match: %.1f%% before, %.1f%% after training\n", 100**res.ExactMatchBefore, 100**res.ExactMatchAfter)
	}
	return nil
}

// isTerminal reports whether f is a character device (a terminal), where a progress bar belongs.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
