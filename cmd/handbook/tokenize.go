package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"handbook/tokenizer"
)

func runTokenize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tokenize", stderr)
	dir := fs.String("tokenizer", "", "directory with tokenizer.json (and tokenizer_config.json), or Hub repository id")
	revision := revisionFlag(fs)
	text := fs.String("text", "", "text to encode")
	file := fs.String("file", "", "file whose whole content is encoded")
	addSpecial := fs.Bool("add_special_tokens", false, "add the post-processor's special tokens (BOS/EOS)")
	decode := fs.String("decode", "", "comma-separated ids to decode instead of encoding")
	skipSpecial := fs.Bool("skip_special_tokens", false, "drop special tokens when decoding")
	asJSON := fs.Bool("json", false, `print {"ids":[…]} (encode) or {"text":"…"} (decode) as the last line`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := resolveDir(ctx, "tokenizer", dir, *revision); err != nil {
		return err
	}
	tok, err := requireTokenizer(*dir)
	if err != nil {
		return err
	}
	inputs := 0
	for _, set := range []bool{*text != "", *file != "", *decode != ""} {
		if set {
			inputs++
		}
	}
	if inputs != 1 {
		return fmt.Errorf("give exactly one of --text, --file and --decode")
	}
	if *decode != "" {
		ids, err := parseIDs(*decode)
		if err != nil {
			return fmt.Errorf("--decode: %w", err)
		}
		for _, id := range ids {
			if int(id) >= tok.VocabSize() || id < 0 {
				return fmt.Errorf("--decode: token id %d is outside the vocabulary (size %d)", id, tok.VocabSize())
			}
		}
		out, err := tok.DecodeChecked(toInts(ids), *skipSpecial)
		if err != nil {
			return fmt.Errorf("--decode: %w", err)
		}
		if *asJSON {
			return printJSON(stdout, struct {
				Text string `json:"text"`
			}{out})
		}
		_, err = fmt.Fprintln(stdout, out)
		return err
	}
	input := *text
	if *file != "" {
		data, err := os.ReadFile(*file)
		if err != nil {
			return fmt.Errorf("--file: %w", err)
		}
		input = string(data)
	}
	ids, err := tok.Encode(input, *addSpecial)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []int{}
	}
	if *asJSON {
		return printJSON(stdout, struct {
			IDs []int `json:"ids"`
		}{ids})
	}
	_, err = fmt.Fprintln(stdout, ids)
	return err
}

func runTemplate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("template", stderr)
	dir := fs.String("tokenizer", "", "directory with tokenizer.json and a chat template, or Hub repository id")
	revision := revisionFlag(fs)
	messagesFile := fs.String("messages", "", `JSON file: a list of messages, or {"messages":[…],"tools":[…],"add_generation_prompt":true,…kwargs}`)
	addGen := fs.Bool("add_generation_prompt", false, "end with the assistant turn's opening")
	asJSON := fs.Bool("json", false, `print {"text":"…"} as the last line`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := resolveDir(ctx, "tokenizer", dir, *revision); err != nil {
		return err
	}
	tok, err := requireTokenizer(*dir)
	if err != nil {
		return err
	}
	if *messagesFile == "" {
		return fmt.Errorf("--messages is required")
	}
	msgs, opts, err := readMessagesFile(*messagesFile)
	if err != nil {
		return err
	}
	if *addGen {
		opts.AddGenerationPrompt = true
	}
	opts.Context = ctx
	tmpl, err := tok.ChatTemplate("")
	if err != nil {
		return err
	}
	out, err := tmpl.Render(msgs, opts)
	if err != nil {
		return fmt.Errorf("rendering %s: %w", *messagesFile, err)
	}
	if *asJSON {
		return printJSON(stdout, struct {
			Text string `json:"text"`
		}{out})
	}
	_, err = fmt.Fprint(stdout, out)
	return err
}

// readMessagesFile accepts a JSON list of messages or an object with "messages" plus template
// variables: "tools", "documents", "add_generation_prompt" and any extra kwargs.
func readMessagesFile(path string) ([]tokenizer.Message, tokenizer.RenderOptions, error) {
	var opts tokenizer.RenderOptions
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, opts, fmt.Errorf("--messages: %w", err)
	}
	var msgs []tokenizer.Message
	if err := json.Unmarshal(data, &msgs); err == nil {
		return msgs, opts, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, opts, fmt.Errorf("--messages %s: want a list of messages or an object with \"messages\": %w", path, err)
	}
	raw, ok := obj["messages"]
	if !ok {
		return nil, opts, fmt.Errorf("--messages %s: the object has no \"messages\" key", path)
	}
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return nil, opts, fmt.Errorf("--messages %s: \"messages\": %w", path, err)
	}
	for key, v := range obj {
		switch key {
		case "messages":
		case "tools":
			opts.Tools = v
		case "documents":
			opts.Documents = v
		case "add_generation_prompt":
			if err := json.Unmarshal(v, &opts.AddGenerationPrompt); err != nil {
				return nil, opts, fmt.Errorf("--messages %s: \"add_generation_prompt\": %w", path, err)
			}
		default: // extra template kwargs such as enable_thinking; raw JSON keeps key order
			if opts.Kwargs == nil {
				opts.Kwargs = map[string]any{}
			}
			opts.Kwargs[key] = v
		}
	}
	return msgs, opts, nil
}

func requireTokenizer(dir string) (*tokenizer.Tokenizer, error) {
	if dir == "" {
		return nil, fmt.Errorf("--tokenizer is required")
	}
	return tokenizer.Load(dir)
}
