package sft

import (
	"context"
	"fmt"
	"strings"

	"handbook/model"
	"handbook/tokenizer"
)

// Answer generates the last (assistant) turn of each conversation: the template renders all turns
// but the last, with the generation prompt, and the model continues it with opts (greedy by
// default; EOSTokenIDs default to the tokenizer's EOS). It returns the decoded answers, trimmed.
func Answer(ctx context.Context, m *model.Model, tok *tokenizer.Tokenizer, tmpl *tokenizer.ChatTemplate,
	conversations [][]tokenizer.Message, opts model.GenerateOptions) ([]string, error) {
	if len(conversations) == 0 {
		return nil, fmt.Errorf("answer: no conversation")
	}
	if opts.EOSTokenIDs == nil {
		opts.EOSTokenIDs = []int{tok.EOS.ID}
	}
	if opts.PadTokenID == 0 {
		opts.PadTokenID = int32(max(0, tok.PAD.ID))
	}
	const chunk = 64
	answers := make([]string, 0, len(conversations))
	for start := 0; start < len(conversations); start += chunk {
		end := min(start+chunk, len(conversations))
		prompts := make([][]int32, 0, end-start)
		for i, conv := range conversations[start:end] {
			if len(conv) < 2 || conv[len(conv)-1].Role != "assistant" {
				return nil, fmt.Errorf("answer: conversation %d does not end with an assistant turn", start+i)
			}
			text, err := tmpl.Render(conv[:len(conv)-1], tokenizer.RenderOptions{AddGenerationPrompt: true})
			if err != nil {
				return nil, fmt.Errorf("answer: conversation %d: %w", start+i, err)
			}
			ids, err := tok.Encode(text, false)
			if err != nil {
				return nil, fmt.Errorf("answer: conversation %d: %w", start+i, err)
			}
			p := make([]int32, len(ids))
			for j, id := range ids {
				p[j] = int32(id)
			}
			prompts = append(prompts, p)
		}
		// Each chunk samples from its own stream, so answers do not depend on the chunking of others.
		chunkOpts := opts
		chunkOpts.Seed = opts.Seed + uint64(start)
		out, err := m.Generate(ctx, prompts, chunkOpts)
		if err != nil {
			return nil, fmt.Errorf("answer: %w", err)
		}
		for _, ids := range out {
			gen := make([]int, len(ids))
			for j, id := range ids {
				gen[j] = int(id)
			}
			answers = append(answers, strings.TrimSpace(tok.Decode(gen, true)))
		}
	}
	return answers, nil
}

// ExactMatch answers each conversation greedily (see Answer) with at most maxNewTokens tokens and
// returns the fraction whose answer equals the last (assistant) turn's content, trimmed. It is the
// held-out score the demo recipes report.
func ExactMatch(ctx context.Context, m *model.Model, tok *tokenizer.Tokenizer, tmpl *tokenizer.ChatTemplate,
	conversations [][]tokenizer.Message, maxNewTokens int) (float64, error) {
	answers, err := Answer(ctx, m, tok, tmpl, conversations, model.GenerateOptions{MaxNewTokens: maxNewTokens})
	if err != nil {
		return 0, fmt.Errorf("exact match: %w", err)
	}
	var hits int
	for i, a := range answers {
		if a == strings.TrimSpace(conversations[i][len(conversations[i])-1].Content) {
			hits++
		}
	}
	return float64(hits) / float64(len(conversations)), nil
}
