package data

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/tokenizer"
)

func msgs(pairs ...string) []tokenizer.Message {
	var out []tokenizer.Message
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, tokenizer.Message{Role: pairs[i], Content: pairs[i+1]})
	}
	return out
}

// TestLegacyDPOPromptExtraction replays the handbook's legacy ApplyChatTemplateTest
// (test_dpo): zephyr template, the prompt ends at the last user turn, chosen and
// rejected hold only the final assistant turn.
func TestLegacyDPOPromptExtraction(t *testing.T) {
	tok := loadTokenizer(t, "mistral") // zephyr-7b-beta shares Mistral's vocabulary and </s>
	tmpl, err := tok.WithChatTemplate(tokenizer.DefaultChatTemplate)
	require.NoError(t, err)
	chosen := msgs("system", "You are a happy chatbot", "user", "Hello!", "assistant", "Bonjour!", "user", "How are you?", "assistant", "I am doing well, thanks!")
	rejected := append(append([]tokenizer.Message(nil), chosen[:4]...), tokenizer.Message{Role: "assistant", Content: "Not so good tbh"})
	got, err := LegacyPreferenceTexts(tmpl, tok.BOS.Text, chosen, rejected, nil, true)
	require.NoError(t, err)
	assert.Equal(t, LegacyTexts{
		Prompt:   "<|system|>\nYou are a happy chatbot</s>\n<|user|>\nHello!</s>\n<|assistant|>\nBonjour!</s>\n<|user|>\nHow are you?</s>\n",
		Chosen:   "<|assistant|>\nI am doing well, thanks!</s>\n",
		Rejected: "<|assistant|>\nNot so good tbh</s>\n",
	}, got)

	// test_sft: the whole conversation.
	text, err := tmpl.Render(chosen, tokenizer.RenderOptions{})
	require.NoError(t, err)
	assert.Equal(t, "<|system|>\nYou are a happy chatbot</s>\n<|user|>\nHello!</s>\n<|assistant|>\nBonjour!</s>\n<|user|>\nHow are you?</s>\n<|assistant|>\nI am doing well, thanks!</s>\n", text)
}

func TestMaybeInsertSystemMessage(t *testing.T) {
	tok := loadTokenizer(t, "mistral")
	withSystem, err := tok.WithChatTemplate(tokenizer.DefaultChatTemplate)
	require.NoError(t, err)
	noSystem, err := tok.WithChatTemplate("{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}")
	require.NoError(t, err)
	joke := msgs("user", "Tell me a joke.")
	assert.Equal(t, msgs("system", "", "user", "Tell me a joke."), MaybeInsertSystemMessage(joke, withSystem))
	assert.Equal(t, joke, MaybeInsertSystemMessage(joke, noSystem))
	sys := msgs("system", "x", "user", "y")
	assert.Equal(t, sys, MaybeInsertSystemMessage(sys, withSystem))
}

func TestExtractPrompt(t *testing.T) {
	tests := []struct {
		name                 string
		chosen, rejected     Turns
		prompt, wantC, wantR Turns
	}{
		{"conversation", Turns{Messages: msgs("user", "sky?", "assistant", "blue")}, Turns{Messages: msgs("user", "sky?", "assistant", "green")},
			Turns{Messages: msgs("user", "sky?")}, Turns{Messages: msgs("assistant", "blue")}, Turns{Messages: msgs("assistant", "green")}},
		{"text, space goes with the completion", Turns{Text: "The sky is blue."}, Turns{Text: "The sky is green."},
			Turns{Text: "The sky is"}, Turns{Text: " blue."}, Turns{Text: " green."}},
		{"text, multibyte difference", Turns{Text: "Café é"}, Turns{Text: "Café è"},
			Turns{Text: "Café"}, Turns{Text: " é"}, Turns{Text: " è"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, c, r := ExtractPrompt(tc.chosen, tc.rejected)
			assert.Equal(t, tc.prompt, p)
			assert.Equal(t, tc.wantC, c)
			assert.Equal(t, tc.wantR, r)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, row string
		format    Format
		want      string
	}{
		{"unknown role", `{"messages": [{"role": "bot", "content": "hi"}]}`, FormatMessages, `column "messages": message 0: field "role": unknown role "bot"`},
		{"content wrong type", `{"messages": [{"role": "user", "content": 3}]}`, FormatMessages, `message 0: field "content": want a string, a list of parts or null, got a number`},
		{"role missing", `{"messages": [{"content": "x"}]}`, FormatMessages, `field "role": want a string`},
		{"messages not a list", `{"messages": "hi"}`, FormatMessages, `column "messages": want a list of messages, got a string`},
		{"empty conversation", `{"messages": []}`, FormatMessages, "empty conversation"},
		{"text wrong type", `{"text": ["a"]}`, FormatText, `column "text": want a string, got a list`},
		{"missing completion", `{"prompt": "a"}`, FormatPromptCompletion, `missing column "completion"`},
		{"mixed prompt kinds", `{"prompt": [{"role": "user", "content": "a"}], "completion": "b"}`, FormatPromptCompletion, "one is a message list"},
		{"bad tools", `{"text": "a", "tools": 3}`, FormatText, `column "tools": want a list`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			row, err := decodeRow([]byte(tc.row))
			require.NoError(t, err)
			_, err = ParseRow(row, tc.format, ParseOptions{})
			require.ErrorContains(t, err, tc.want)
		})
	}
	_, err := DetectFormat(Row{"foo": json.RawMessage(`1`)}, ParseOptions{})
	require.ErrorContains(t, err, "match no format")
}

// TestTokenizeErrorsNameTheRow checks that a bad row deep in a dataset fails the
// whole preparation with its origin, column and message index.
func TestTokenizeErrorsNameTheRow(t *testing.T) {
	tok := loadTokenizer(t, "qwen3")
	ds := datasetOf(t, []json.RawMessage{
		json.RawMessage(`{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}`),
		json.RawMessage(`{"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}`),
	})
	_, _, err := Tokenize(context.Background(), ds, TokenizeConfig{Tokenizer: tok})
	require.ErrorContains(t, err, `inline: row 1: column "messages": message 1: field "role": unknown role "robot"`)

	mixed := datasetOf(t, []json.RawMessage{json.RawMessage(`{"text": "a"}`), json.RawMessage(`{"prompt": "a", "completion": "b"}`)})
	_, _, err = Tokenize(context.Background(), mixed, TokenizeConfig{Tokenizer: tok})
	require.ErrorContains(t, err, `inline: row 1: missing column "text"`)

	_, _, err = TokenizePreference(context.Background(), mixed, TokenizeConfig{Tokenizer: tok})
	require.ErrorContains(t, err, "text data does not fit this trainer")
}

// TestEOSLabelSurvivesPadEqualsEOS: with pad == eos (Mistral has no pad token),
// the appended EOS keeps its label and only padding is ignored (trl#1623).
func TestEOSLabelSurvivesPadEqualsEOS(t *testing.T) {
	tok := loadTokenizer(t, "mistral")
	require.Equal(t, -1, tok.PAD.ID)
	eos := int32(tok.EOS.ID)
	ds := datasetOf(t, []json.RawMessage{json.RawMessage(`{"text": "Hello world"}`), json.RawMessage(`{"text": "A longer line of text here"}`)})
	samples, _, err := Tokenize(context.Background(), ds, TokenizeConfig{Tokenizer: tok})
	require.NoError(t, err)
	short := samples[0]
	require.Equal(t, eos, short.InputIDs[len(short.InputIDs)-1], "EOS appended")
	b, err := Collate(samples, CollateConfig{PadID: eos})
	require.NoError(t, err)
	last := len(short.InputIDs) - 1
	assert.Equal(t, eos, b.Labels[0][last], "the real EOS is trained")
	for j := last + 1; j < len(b.InputIDs[0]); j++ {
		assert.Equal(t, eos, b.InputIDs[0][j], "padded with eos")
		assert.Equal(t, int32(IgnoreIndex), b.Labels[0][j], "padding is not trained")
		assert.Equal(t, int32(0), b.AttentionMask[0][j])
	}
	// Text already ending in EOS gets no second one.
	ds = datasetOf(t, []json.RawMessage{json.RawMessage(`{"text": "Hello world</s>"}`)})
	again, _, err := Tokenize(context.Background(), ds, TokenizeConfig{Tokenizer: tok})
	require.NoError(t, err)
	assert.Equal(t, short.InputIDs, again[0].InputIDs)
}

// TestNoTrainableTokensAreCounted: samples left with nothing to train on are
// dropped, counted and named — never trained silently (trl#4879); when none is
// left it is an error that says why.
func TestNoTrainableTokensAreCounted(t *testing.T) {
	tok := loadTokenizer(t, "qwen3")
	chatml, err := tok.WithChatTemplate(tokenizer.ChatMLTemplate)
	require.NoError(t, err)
	long := `{"messages": [{"role": "user", "content": "a very long question that fills the whole budget of tokens"}, {"role": "assistant", "content": "ok"}]}`
	short := `{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}`
	ds := datasetOf(t, []json.RawMessage{json.RawMessage(short), json.RawMessage(long), json.RawMessage(short)})
	samples, st, err := Tokenize(context.Background(), ds, TokenizeConfig{Tokenizer: tok, Template: chatml, AssistantOnlyLoss: true, MaxLength: 10})
	require.NoError(t, err)
	assert.Len(t, samples, 2)
	assert.Equal(t, Stats{Rows: 3, Kept: 2, Truncated: 3, NoTrainable: 1, NoTrainableExamples: []Origin{{"inline", 1}}}, st)

	// The tokenizer's own Qwen3 template has no {% generation %} blocks: nothing is trainable.
	_, st, err = Tokenize(context.Background(), ds, TokenizeConfig{Tokenizer: tok, AssistantOnlyLoss: true})
	require.ErrorContains(t, err, "none of the 3 samples has a trainable token (assistant_only_loss needs a chat template with {% generation %} blocks)")
	assert.Equal(t, 3, st.NoTrainable)
}
