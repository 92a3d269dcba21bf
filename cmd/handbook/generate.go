package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"handbook/model"
	"handbook/tokenizer"
)

// samplingFlags are the generation flags generate and chat share, named as transformers'
// GenerationConfig names them.
type samplingFlags struct {
	fs          *flag.FlagSet
	maxNew      *int
	doSample    *bool
	temperature *float64
	topK        *int
	topP        *float64
	seed        *uint64
}

func addSamplingFlags(fs *flag.FlagSet, maxNew int) *samplingFlags {
	return &samplingFlags{fs: fs,
		maxNew:      fs.Int("max_new_tokens", maxNew, "number of tokens to generate at most (capped at the model's positions)"),
		doSample:    fs.Bool("do_sample", false, "sample instead of greedy decoding"),
		temperature: fs.Float64("temperature", 1, "sampling temperature (> 0)"),
		topK:        fs.Int("top_k", 50, "keep the k most likely tokens when sampling (0 disables)"),
		topP:        fs.Float64("top_p", 1, "nucleus sampling mass, in (0, 1] (1 disables)"),
		seed:        fs.Uint64("seed", 42, "sampling seed"),
	}
}

// options validates the flags, each error naming its flag, as transformers' GenerationConfig
// validates them; sampling flags given without --do_sample get a note, since greedy decoding
// ignores them.
func (s *samplingFlags) options(stderr io.Writer) (model.GenerateOptions, error) {
	err := checkNumbers(atLeast("max_new_tokens", *s.maxNew, 1),
		finite("temperature", *s.temperature, *s.temperature > 0, "a number > 0 (for greedy decoding leave --do_sample off)"),
		atLeast("top_k", *s.topK, 0),
		finite("top_p", *s.topP, *s.topP > 0 && *s.topP <= 1, "a number in (0, 1]"))
	if err != nil {
		return model.GenerateOptions{}, err
	}
	opts := model.GenerateOptions{MaxNewTokens: *s.maxNew, DoSample: *s.doSample, Seed: *s.seed}
	if *s.doSample {
		opts.Temperature, opts.TopK, opts.TopP = *s.temperature, *s.topK, *s.topP
		return opts, nil
	}
	var ignored []string
	s.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "temperature", "top_k", "top_p", "seed":
			ignored = append(ignored, "--"+f.Name)
		}
	})
	if len(ignored) > 0 {
		fmt.Fprintf(stderr, "note: %s only apply with --do_sample; decoding greedily\n", strings.Join(ignored, ", "))
	}
	return opts, nil
}

// fitNewTokens caps maxNew so the prompt and its continuation fit the model's positions
// (transformers would generate past them, and the output is garbage there).
func fitNewTokens(m *model.Model, promptLen, maxNew int, stderr io.Writer) (int, error) {
	positions := m.Config.MaxPositionEmbeddings
	if positions <= 0 || promptLen+maxNew <= positions {
		return maxNew, nil
	}
	if promptLen >= positions {
		return 0, fmt.Errorf("the prompt has %d tokens; the model has %d positions (max_position_embeddings)", promptLen, positions)
	}
	fmt.Fprintf(stderr, "note: --max_new_tokens capped at %d: the prompt has %d tokens and the model %d positions\n",
		positions-promptLen, promptLen, positions)
	return positions - promptLen, nil
}

func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("generate", stderr)
	dir := fs.String("model", "", "model directory (config.json + safetensors) or Hub repository id")
	adapter := fs.String("adapter", "", "LoRA adapter directory (PEFT format) or Hub repository id, applied on top of --model")
	revision := revisionFlag(fs)
	prompt := fs.String("prompt", "", "prompt text (needs tokenizer.json in the model directory)")
	promptIDs := fs.String("prompt_ids", "", "prompt as comma-separated token ids, e.g. 1,2,3")
	messages := fs.String("messages", "", `JSON file of a conversation (as "handbook template" reads it), rendered with the model's chat template and its generation prompt`)
	sampling := addSamplingFlags(fs, 32)
	asJSON := fs.Bool("json", false, `print {"ids":[…],"text":"…"} as the last line`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := 0
	for _, s := range []string{*prompt, *promptIDs, *messages} {
		if s != "" {
			given++
		}
	}
	if given != 1 {
		return fmt.Errorf("give exactly one of --prompt, --prompt_ids and --messages")
	}
	opts, err := sampling.options(stderr)
	if err != nil {
		return err
	}
	if err := errors.Join(resolveDir(ctx, "model", dir, *revision), resolveDir(ctx, "adapter", adapter, "")); err != nil {
		return err
	}
	m, err := loadModelWithAdapter(*dir, *adapter, stderr)
	if err != nil {
		return err
	}
	defer m.Finalize()
	tok, err := loadTokenizer(*dir, *adapter)
	if err != nil {
		return err
	}
	if tok == nil && *promptIDs == "" {
		return fmt.Errorf("--prompt and --messages need tokenizer.json in %s (or use --prompt_ids)", *dir)
	}
	var ids []int32
	switch {
	case *promptIDs != "":
		if ids, err = parseIDs(*promptIDs); err != nil {
			return fmt.Errorf("--prompt_ids: %w", err)
		}
	case *prompt != "":
		enc, err := tok.Encode(*prompt, true)
		if err != nil {
			return fmt.Errorf("--prompt: %w", err)
		}
		ids = toInt32s(enc)
	default:
		if ids, err = renderConversation(ctx, tok, *messages); err != nil {
			return err
		}
	}
	if opts.MaxNewTokens, err = fitNewTokens(m, len(ids), opts.MaxNewTokens, stderr); err != nil {
		return err
	}
	if tok != nil {
		opts.EOSTokenIDs = stopIDs(m, tok)
	}
	out, err := m.Generate(ctx, [][]int32{ids}, opts)
	if err != nil {
		return err
	}
	newIDs := out[0]
	text := ""
	if tok != nil {
		if text, err = tok.DecodeChecked(toInts(newIDs), true); err != nil {
			return err
		}
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

// renderConversation renders a --messages file with the tokenizer's chat template and the
// generation prompt, encoded as apply_chat_template(tokenize=True) does (no special tokens added:
// the template writes them).
func renderConversation(ctx context.Context, tok *tokenizer.Tokenizer, path string) ([]int32, error) {
	msgs, opts, err := readMessagesFile(path)
	if err != nil {
		return nil, err
	}
	tmpl, err := tok.ChatTemplate("")
	if err != nil {
		return nil, err
	}
	opts.AddGenerationPrompt, opts.Context = true, ctx
	ids, _, err := tok.EncodeChat(tmpl, msgs, opts)
	if err != nil {
		return nil, fmt.Errorf("--messages %s: %w", path, err)
	}
	return toInt32s(ids), nil
}

// stopIDs are the model's EOS ids plus the tokenizer's EOS (the end of a chat turn).
func stopIDs(m *model.Model, tok *tokenizer.Tokenizer) []int {
	ids := m.EOSTokenIDs()
	if tok.EOS.ID >= 0 && !slices.Contains(ids, tok.EOS.ID) {
		ids = append(ids, tok.EOS.ID)
	}
	return ids
}
