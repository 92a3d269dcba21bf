package sft

import (
	"context"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/model"
	"handbook/tokenizer"
)

// demoModel is the tiny demo recipe's model with random weights and its chat tokenizer.
func demoModel(t *testing.T) (*model.Model, *tokenizer.Tokenizer, *tokenizer.ChatTemplate) {
	t.Helper()
	b, _, err := backend.New()
	require.NoError(t, err)
	m, err := model.Init(b, "../recipes/tiny/model", dtypes.Float32, 7)
	require.NoError(t, err)
	t.Cleanup(m.Finalize)
	tok, err := tokenizer.Load("../recipes/tiny/model")
	require.NoError(t, err)
	tmpl, err := tok.ChatTemplate("")
	require.NoError(t, err)
	return m, tok, tmpl
}

func ask(question, answer string) []tokenizer.Message {
	return []tokenizer.Message{{Role: "user", Content: question}, {Role: "assistant", Content: answer}}
}

// TestAnswerAndExactMatch: a batch answers each conversation as it would alone (left padding does
// not leak), sampling is reproducible from its seed, and ExactMatch counts the conversations whose
// reference answer is what the model answers.
func TestAnswerAndExactMatch(t *testing.T) {
	ctx := context.Background()
	m, tok, tmpl := demoModel(t)
	convs := [][]tokenizer.Message{ask("What is 3 + 4?", "7"), ask("Reverse: abcdefgh", "hgfedcba"), ask("Sort: hda", "adh")}
	greedy := model.GenerateOptions{MaxNewTokens: 6}
	batch, err := Answer(ctx, m, tok, tmpl, convs, greedy)
	require.NoError(t, err)
	require.Len(t, batch, len(convs))
	assert.NotEmpty(t, strings.Join(batch, ""), "the random model says something")
	for i, c := range convs {
		alone, err := Answer(ctx, m, tok, tmpl, [][]tokenizer.Message{c}, greedy)
		require.NoError(t, err)
		assert.Equal(t, alone[0], batch[i], "conversation %d", i)
	}

	sample := model.GenerateOptions{MaxNewTokens: 6, DoSample: true, Seed: 3}
	first, err := Answer(ctx, m, tok, tmpl, convs, sample)
	require.NoError(t, err)
	again, err := Answer(ctx, m, tok, tmpl, convs, sample)
	require.NoError(t, err)
	assert.Equal(t, first, again, "same seed, same samples")

	// Two conversations carry the model's own greedy answer as reference, one a different text.
	scored := [][]tokenizer.Message{ask(convs[0][0].Content, batch[0]), ask(convs[1][0].Content, batch[1]+"x"), ask(convs[2][0].Content, " "+batch[2]+" ")}
	score, err := ExactMatch(ctx, m, tok, tmpl, scored, 6)
	require.NoError(t, err)
	assert.InDelta(t, 2.0/3, score, 1e-12)
}

func TestAnswerRejectsBadConversations(t *testing.T) {
	m, tok, tmpl := demoModel(t)
	for name, tc := range map[string]struct {
		convs [][]tokenizer.Message
		want  string
	}{
		"none":             {nil, "no conversation"},
		"no answer turn":   {[][]tokenizer.Message{ask("q", "a"), {{Role: "user", Content: "q"}}}, "conversation 1 does not end with an assistant turn"},
		"ends with a user": {[][]tokenizer.Message{{{Role: "assistant", Content: "a"}, {Role: "user", Content: "q"}}}, "conversation 0 does not end with an assistant turn"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Answer(context.Background(), m, tok, tmpl, tc.convs, model.GenerateOptions{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
