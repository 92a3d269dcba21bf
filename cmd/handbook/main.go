// Command handbook is the command-line face of the handbook library: a thin layer that parses
// flags, calls the packages and prints. Run `handbook help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"

	"handbook"
)

// command is one subcommand: it parses its own flags from args and writes to stdout/stderr.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"sft", "supervised fine-tuning from a recipe (run_sft.py)", trainCommand(handbook.TaskSFT, "SFTConfig")},
	{"dpo", "direct preference optimisation from a recipe (run_dpo.py)", trainCommand(handbook.TaskDPO, "DPOConfig")},
	{"orpo", "odds-ratio preference optimisation from a recipe (run_orpo.py)", trainCommand(handbook.TaskORPO, "ORPOConfig")},
	{"data", "preview a recipe's data as the trainer will see it", runData},
	{"generate", "continue a prompt or a conversation with a model (greedy or sampled)", runGenerate},
	{"chat", "talk with a model in the terminal through its chat template", runChat},
	{"estimate", "per-device memory of training a model under a ZeRO stage (params, grads, optimizer, activations)", runEstimate},
	{"merge", "fold a LoRA adapter into its base model and save a full checkpoint", runMerge},
	{"push", "upload an output directory to a Hugging Face Hub repository (push_to_hub)", runPush},
	{"eval", "mean next-token loss and perplexity of a model on tokens or text", runEval},
	{"tokenize", "encode text to token ids, or decode ids to text", runTokenize},
	{"template", "render a conversation with the tokenizer's chat template", runTemplate},
	{"version", "print the version", runVersion},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			default:
				fmt.Fprintf(stderr, "handbook %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "handbook: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: handbook <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `handbook <command> -h` for a command's flags.")
}

// version is the module version stamped by the build, "devel" otherwise.
func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	v := "devel"
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	_, err := fmt.Fprintln(stdout, "handbook", v)
	return err
}
