package sft

import (
	"context"
	"fmt"
	"strings"

	"handbook/model"
	"handbook/tokenizer"
)

// ExactMatch answers each conversation greedily — the template renders all turns but the last,
// with the generation prompt — and returns the fraction whose generated text, trimmed, equals the
// last (assistant) turn's content. It is the held-out score the demo recipes report.
func ExactMatch(ctx context.Context, m *model.Model, tok *tokenizer.Tokenizer, tmpl *tokenizer.ChatTemplate,
	conversations [][]tokenizer.Message, maxNewTokens int) (float64, error) {
	if len(conversations) == 0 {
		return 0, fmt.Errorf("exact match: no conversation")
	}
	const chunk = 64
	eos := []int{tok.EOS.ID}
	var hits int
	for start := 0; start < len(conversations); start += chunk {
		end := min(start+chunk, len(conversations))
		prompts := make([][]int32, 0, end-start)
		for i, conv := range conversations[start:end] {
			if len(conv) < 2 || conv[len(conv)-1].Role != "assistant" {
				return 0, fmt.Errorf("exact match: conversation %d does not end with an assistant turn", start+i)
			}
			text, err := tmpl.Render(conv[:len(conv)-1], tokenizer.RenderOptions{AddGenerationPrompt: true})
			if err != nil {
				return 0, fmt.Errorf("exact match: conversation %d: %w", start+i, err)
			}
			ids, err := tok.Encode(text, false)
			if err != nil {
				return 0, fmt.Errorf("exact match: conversation %d: %w", start+i, err)
			}
			p := make([]int32, len(ids))
			for j, id := range ids {
				p[j] = int32(id)
			}
			prompts = append(prompts, p)
		}
		out, err := m.Generate(ctx, prompts, model.GenerateOptions{MaxNewTokens: maxNewTokens, EOSTokenIDs: eos, PadTokenID: int32(max(0, tok.PAD.ID))})
		if err != nil {
			return 0, fmt.Errorf("exact match: %w", err)
		}
		for i, ids := range out {
			gen := make([]int, len(ids))
			for j, id := range ids {
				gen[j] = int(id)
			}
			want := conversations[start+i][len(conversations[start+i])-1].Content
			if strings.TrimSpace(tok.Decode(gen, true)) == strings.TrimSpace(want) {
				hits++
			}
		}
	}
	return float64(hits) / float64(len(conversations)), nil
}
