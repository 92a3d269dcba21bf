package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"handbook/model"
)

func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("generate", stderr)
	dir := fs.String("model", "", "model directory (config.json + safetensors) or Hub repository id")
	adapter := fs.String("adapter", "", "LoRA adapter directory (PEFT format) or Hub repository id, applied on top of --model")
	revision := revisionFlag(fs)
	prompt := fs.String("prompt", "", "prompt text (needs tokenizer.json in the model directory)")
	promptIDs := fs.String("prompt_ids", "", "prompt as comma-separated token ids, e.g. 1,2,3")
	maxNew := fs.Int("max_new_tokens", 32, "number of tokens to generate at most")
	doSample := fs.Bool("do_sample", false, "sample instead of greedy decoding")
	temperature := fs.Float64("temperature", 1, "sampling temperature")
	topK := fs.Int("top_k", 50, "keep the k most likely tokens when sampling (0 disables)")
	topP := fs.Float64("top_p", 1, "nucleus sampling mass (1 disables)")
	seed := fs.Uint64("seed", 42, "sampling seed")
	asJSON := fs.Bool("json", false, `print {"ids":[…],"text":"…"} as the last line`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*prompt == "") == (*promptIDs == "") {
		return fmt.Errorf("give exactly one of --prompt and --prompt_ids")
	}
	if err := errors.Join(resolveDir(ctx, "model", dir, *revision), resolveDir(ctx, "adapter", adapter, "")); err != nil {
		return err
	}
	m, err := loadModelWithAdapter(*dir, *adapter, stderr)
	if err != nil {
		return err
	}
	defer m.Finalize()
	tok, err := loadTokenizer(*dir)
	if err != nil {
		return err
	}
	var ids []int32
	if *promptIDs != "" {
		if ids, err = parseIDs(*promptIDs); err != nil {
			return fmt.Errorf("--prompt_ids: %w", err)
		}
	} else {
		if tok == nil {
			return fmt.Errorf("--prompt needs tokenizer.json in %s (or use --prompt_ids)", *dir)
		}
		enc, err := tok.Encode(*prompt, true)
		if err != nil {
			return fmt.Errorf("--prompt: %w", err)
		}
		ids = toInt32s(enc)
	}
	opts := model.GenerateOptions{MaxNewTokens: *maxNew, DoSample: *doSample, Seed: *seed}
	if *doSample {
		opts.Temperature, opts.TopK, opts.TopP = *temperature, *topK, *topP
	}
	out, err := m.Generate(ctx, [][]int32{ids}, opts)
	if err != nil {
		return err
	}
	newIDs := out[0]
	text := ""
	if tok != nil {
		text = tok.Decode(toInts(newIDs), true)
	}
	if *asJSON {
		return printJSON(stdout, struct {
			IDs  []int32 `json:"ids"`
			Text string  `json:"text"`
		}{newIDs, text})
	}
	if tok != nil {
		_, err = fmt.Fprintln(stdout, text)
		return err
	}
	_, err = fmt.Fprintln(stdout, newIDs)
	return err
}
