package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"unicode/utf8"

	"handbook/model"
	"handbook/tokenizer"
)

// runChat is `handbook chat --model DIR|HUB_ID [--adapter DIR] [--system TEXT]`: a conversation in
// the terminal through the model's chat template, the answer streamed as it is generated. /reset
// starts over, /exit (or end of input) quits; the history is kept within the model's context
// window, oldest turns dropped first.
func runChat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("chat", stderr)
	name := fs.String("model", "", "model directory or Hub repository id")
	adapter := fs.String("adapter", "", "LoRA adapter directory (PEFT format) or Hub repository id, applied on top of --model")
	revision := revisionFlag(fs)
	system := fs.String("system", "", "system message that opens the conversation")
	sampling := addSamplingFlags(fs, 256)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		return fmt.Errorf("--model is required")
	}
	opts, err := sampling.options(stderr)
	if err != nil {
		return err
	}
	dir := *name
	if err := errors.Join(resolveDir(ctx, "model", &dir, *revision), resolveDir(ctx, "adapter", adapter, "")); err != nil {
		return err
	}
	m, err := loadModelWithAdapter(dir, *adapter, stderr)
	if err != nil {
		return err
	}
	defer m.Finalize()
	tok, err := loadTokenizer(dir, *adapter)
	if err != nil {
		return err
	}
	if tok == nil {
		return fmt.Errorf("--model %s has no tokenizer.json", *name)
	}
	tmpl, err := tok.ChatTemplate("")
	if err != nil {
		return err
	}
	c := &chat{ctx: ctx, m: m, tok: tok, tmpl: tmpl, opts: opts, out: stdout, notes: stderr, window: contextWindow(m, tok)}
	c.opts.EOSTokenIDs = stopIDs(m, tok)
	if *system != "" {
		c.system = []tokenizer.Message{{Role: "system", Content: *system}}
	}
	c.reset()
	fmt.Fprintf(stdout, "chatting with %s (%d-token context); /reset starts over, /exit quits\n", *name, c.window)
	in := bufio.NewReader(os.Stdin)
	for {
		fmt.Fprint(stdout, "> ")
		line, err := in.ReadString('\n')
		if err != nil && line == "" {
			fmt.Fprintln(stdout)
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch line = strings.TrimSpace(line); {
		case line == "":
		case line == "/exit" || line == "/quit":
			return nil
		case line == "/reset":
			c.reset()
			fmt.Fprintln(stdout, "(new conversation)")
		case strings.HasPrefix(line, "/"):
			fmt.Fprintf(stdout, "unknown command %s: /reset starts over, /exit quits\n", line)
		default:
			if err := c.turn(line); err != nil {
				if ctx.Err() != nil { // interrupted: the partial answer stays on screen
					fmt.Fprintln(stdout)
					return nil
				}
				fmt.Fprintf(stdout, "error: %v\n", err)
			}
		}
	}
}

// contextWindow is how many tokens a conversation may take: the model's positions, or the
// tokenizer's model_max_length when smaller.
func contextWindow(m *model.Model, tok *tokenizer.Tokenizer) int {
	w := m.Config.MaxPositionEmbeddings
	if w <= 0 {
		w = math.MaxInt
	}
	return min(w, tok.ModelMaxLength)
}

type chat struct {
	ctx     context.Context
	m       *model.Model
	tok     *tokenizer.Tokenizer
	tmpl    *tokenizer.ChatTemplate
	opts    model.GenerateOptions
	out     io.Writer
	notes   io.Writer
	window  int
	system  []tokenizer.Message
	history []tokenizer.Message
}

func (c *chat) reset() { c.history = append([]tokenizer.Message(nil), c.system...) }

// turn answers one user message, streaming the answer, and keeps both in the history.
func (c *chat) turn(text string) error {
	history := append(c.history, tokenizer.Message{Role: "user", Content: text})
	ids, history, err := c.fit(history)
	if err != nil {
		return err
	}
	opts := c.opts
	opts.MaxNewTokens = min(opts.MaxNewTokens, c.window-len(ids))
	s := &streamer{tok: c.tok, w: c.out}
	opts.OnToken = func(_ int, id int32) { s.add(id) }
	if _, err := c.m.Generate(c.ctx, [][]int32{ids}, opts); err != nil {
		return err
	}
	answer, err := s.finish()
	if err != nil {
		return err
	}
	fmt.Fprintln(c.out)
	c.history = append(history, tokenizer.Message{Role: "assistant", Content: strings.TrimSpace(answer)})
	return nil
}

// fit renders history with the generation prompt, dropping the oldest turns after the system
// message until the prompt leaves room for an answer in the context window.
func (c *chat) fit(history []tokenizer.Message) ([]int32, []tokenizer.Message, error) {
	dropped := 0
	for {
		ids, _, err := c.tok.EncodeChat(c.tmpl, history, tokenizer.RenderOptions{AddGenerationPrompt: true, Context: c.ctx})
		if err != nil {
			return nil, nil, err
		}
		if len(ids) < c.window {
			if dropped > 0 {
				fmt.Fprintf(c.notes, "(the conversation outgrew the %d-token context: dropped its %d oldest messages)\n", c.window, dropped)
			}
			return toInt32s(ids), history, nil
		}
		first := len(c.system)
		if len(history)-first <= 1 {
			return nil, nil, fmt.Errorf("the message takes %d tokens; the context holds %d", len(ids), c.window)
		}
		history = append(append([]tokenizer.Message(nil), history[:first]...), history[first+1:]...)
		dropped++
	}
}

// streamer prints generated text as it grows, holding back an incomplete character.
type streamer struct {
	tok     *tokenizer.Tokenizer
	w       io.Writer
	ids     []int
	printed string
}

func (s *streamer) add(id int32) {
	s.ids = append(s.ids, int(id))
	text := s.tok.Decode(s.ids, true)
	if strings.HasSuffix(text, string(utf8.RuneError)) || !strings.HasPrefix(text, s.printed) {
		return
	}
	io.WriteString(s.w, text[len(s.printed):])
	s.printed = text
}

// finish prints what is left and returns the whole answer.
func (s *streamer) finish() (string, error) {
	text, err := s.tok.DecodeChecked(s.ids, true)
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(text, s.printed) {
		io.WriteString(s.w, text[len(s.printed):])
	} else { // the decoder rewrote earlier text: show the answer as it ends
		fmt.Fprintf(s.w, "\n%s", text)
	}
	return text, nil
}
