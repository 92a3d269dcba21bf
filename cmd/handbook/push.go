package main

import (
	"context"
	"fmt"
	"io"

	"handbook"
)

// runPush is `handbook push --model DIR --repo ID`: Trainer.push_to_hub for any output directory.
func runPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("push", stderr)
	dir := fs.String("model", "", "directory to push (a run's output_dir, a merged model, an adapter)")
	repo := fs.String("repo", "", `repository id ("org/name", or "name" under the token's user)`)
	private := fs.Bool("private", false, "make a new repository private")
	revision := fs.String("revision", "", "branch to push to (created from main when missing; default main)")
	token := fs.String("token", "", "Hub token with write access (default: HF_TOKEN, else $HF_HOME/token)")
	message := fs.String("message", "", `commit message (default "Upload folder using huggingface_hub")`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *repo == "" {
		return fmt.Errorf("--model and --repo are required")
	}
	res, err := handbook.Push(ctx, *dir, handbook.PushOptions{Repo: *repo, Revision: *revision, Private: *private, Token: *token,
		Message: *message})
	if err != nil {
		return err
	}
	if len(res.Committed) == 0 {
		_, err = fmt.Fprintf(stdout, "%s is up to date (%d files unchanged, commit %s)\n", res.Repo, len(res.Unchanged), res.OID)
		return err
	}
	_, err = fmt.Fprintf(stdout, "pushed %d files (%d to LFS storage, %d unchanged) to %s: %s\n",
		len(res.Committed), len(res.LFSUploaded), len(res.Unchanged), res.Repo, res.URL)
	return err
}
