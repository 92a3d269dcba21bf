package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"handbook"
)

// runData is `handbook data RECIPE.yaml [--key=value …] [--task T] [--show N] [--json]`: what a
// trainer will see of the recipe's data — the resolved mixture and N formatted examples with
// their loss masks.
func runData(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stderr, "usage: handbook data RECIPE.yaml [--key=value …] [--task sft|dpo|orpo] [--show N] [--json]\n\n"+
			"Prints the resolved dataset mixture and N (default 3) tokenized training examples; text in the loss\n"+
			"is shown between ⟦ and ⟧. --task defaults to the recipe's folder (…/dpo/, …/orpo/, else sft).\n"+
			`--json prints {"train_rows":N,"test_rows":N,"sources":[…],"examples":[…]} as the last line.`)
		return flag.ErrHelp
	}
	flags, rest, err := takeFlags(args, []string{"show", "task"}, []string{"json"})
	if err != nil {
		return err
	}
	show, err := countFlag(flags, "show", 3)
	if err != nil {
		return err
	}
	path, overrides, err := handbook.ParseArgs(rest)
	if err != nil {
		return err
	}
	task := handbook.TaskFromPath(path)
	if t, ok := flags["task"]; ok {
		task = handbook.Task(t)
		if task != handbook.TaskSFT && task != handbook.TaskDPO && task != handbook.TaskORPO {
			return fmt.Errorf("--task: want sft, dpo or orpo, got %q", t)
		}
	}
	recipe, err := handbook.LoadRecipe(path, task, overrides)
	if err != nil {
		return err
	}
	p, err := handbook.Preview(ctx, recipe, show, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	if flags["json"] == "true" {
		return printJSON(stdout, p)
	}
	_, err = fmt.Fprint(stdout, p)
	return err
}
