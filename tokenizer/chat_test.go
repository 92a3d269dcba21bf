package tokenizer

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type chatGolden struct {
	Templates []struct {
		TemplateName string  `json:"template_name"`
		Template     *string `json:"template"`
		Cases        []struct {
			Conversation        string          `json:"conversation"`
			Messages            []Message       `json:"messages"`
			Tools               json.RawMessage `json:"tools"`
			AddGenerationPrompt bool            `json:"add_generation_prompt"`
			Kwargs              map[string]any  `json:"kwargs"`
			Text                string          `json:"text"`
			Error               string          `json:"error"` // the template raised this instead

			IDs            []int `json:"ids"`
			AssistantMasks []int `json:"assistant_masks"`
		} `json:"cases"`
	} `json:"templates"`
}

func TestChatTemplatesMatchGoldens(t *testing.T) {
	for _, name := range []string{"qwen3", "mistral"} {
		t.Run(name, func(t *testing.T) {
			checkChatGoldens(t, loadFixture(t, name), filepath.Join("testdata", name, "chat_goldens.json.gz"))
		})
	}
}

// checkChatGoldens asserts that tok renders every case of a chat_goldens.json.gz
// file byte-identically (or fails with the recorded error), and, where the
// golden has them, reproduces the ids and assistant masks.
func checkChatGoldens(t *testing.T, tok *Tokenizer, goldenPath string) {
	t.Helper()
	var golden chatGolden
	require.NoError(t, json.Unmarshal(readGz(t, goldenPath), &golden))
	require.NotEmpty(t, golden.Templates)
	for _, tg := range golden.Templates {
		var tmpl *ChatTemplate
		var err error
		if tg.Template == nil {
			tmpl, err = tok.ChatTemplate("")
		} else {
			tmpl, err = tok.WithChatTemplate(*tg.Template)
		}
		require.NoError(t, err)
		for _, c := range tg.Cases {
			t.Run(fmt.Sprintf("%s/%s/gen=%v/%v", tg.TemplateName, c.Conversation, c.AddGenerationPrompt, c.Kwargs), func(t *testing.T) {
				opts := RenderOptions{AddGenerationPrompt: c.AddGenerationPrompt, Tools: c.Tools, Kwargs: c.Kwargs}
				text, err := tmpl.Render(c.Messages, opts)
				if c.Error != "" {
					require.ErrorContains(t, err, c.Error)
					return
				}
				require.NoError(t, err)
				require.Equal(t, c.Text, text)
				if c.AssistantMasks == nil {
					return
				}
				ids, mask, err := tok.EncodeChat(tmpl, c.Messages, opts)
				require.NoError(t, err)
				require.Equal(t, c.IDs, ids)
				require.Equal(t, c.AssistantMasks, mask)
			})
		}
	}
}

func TestDefaultTemplateFallback(t *testing.T) {
	tok := loadFixture(t, "mistral")
	tmpl, err := tok.ChatTemplate("")
	require.NoError(t, err)
	require.Equal(t, DefaultChatTemplate, tmpl.Source)
	text, err := tmpl.Render([]Message{{Role: "user", Content: "Hi"}}, RenderOptions{AddGenerationPrompt: true})
	require.NoError(t, err)
	require.Equal(t, "<|user|>\nHi</s>\n<|assistant|>\n", text)
	_, err = tok.ChatTemplate("tool_use")
	require.ErrorContains(t, err, `no template named "tool_use"`)
}

func TestChatTemplateErrors(t *testing.T) {
	tok := loadFixture(t, "qwen3")
	tests := []struct {
		name, source, wantErr string
	}{
		{"syntax error", "{% for m in messages %}{{ m.content }}", "chat template"},
		{"raise_exception", "{{ raise_exception('Conversation roles must alternate') }}", "Conversation roles must alternate"},
		{"unterminated generation", "{% generation %}x", "chat template"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := tok.WithChatTemplate(tc.source)
			if err == nil {
				_, err = tmpl.Render([]Message{{Role: "user", Content: "hi"}}, RenderOptions{})
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestChatMLTemplateMask(t *testing.T) {
	tok := loadFixture(t, "qwen3")
	tmpl, err := tok.WithChatTemplate(ChatMLTemplate)
	require.NoError(t, err)
	ids, mask, err := tok.EncodeChat(tmpl, []Message{{Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello"}}, RenderOptions{})
	require.NoError(t, err)
	var masked []int
	for i, m := range mask {
		if m == 1 {
			masked = append(masked, ids[i])
		}
	}
	require.Equal(t, "Hello<|im_end|>", tok.Decode(masked, false))
}

// longConversation is n alternating turns of about 400 bytes each.
func longConversation(n int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		msgs[i] = Message{Role: role, Content: strings.Repeat(fmt.Sprintf("turn %d ", i), 40)}
	}
	return msgs
}

// TestDefaultTemplateBudgetFitsLongConversations renders a 2000-turn
// conversation with real templates under a tenth of every default limit.
func TestDefaultTemplateBudgetFitsLongConversations(t *testing.T) {
	d := DefaultTemplateBudget()
	tenth := TemplateBudget{MaxRange: d.MaxRange / 10, MaxDepth: d.MaxDepth / 10, MaxOutput: d.MaxOutput / 10,
		MaxMemory: d.MaxMemory / 10, MaxSteps: d.MaxSteps / 10}
	for _, name := range []string{"qwen3", "mistral"} {
		tmpl, err := loadFixture(t, name).ChatTemplate("")
		require.NoError(t, err)
		tmpl.Budget = tenth
		text, err := tmpl.Render(longConversation(2000), RenderOptions{AddGenerationPrompt: true})
		require.NoError(t, err, name)
		require.Greater(t, len(text), 2000*250, name)
	}
}

func TestChatTemplateBudgetErrors(t *testing.T) {
	tok := loadFixture(t, "qwen3")
	tmpl, err := tok.ChatTemplate("")
	require.NoError(t, err)
	tmpl.Budget = TemplateBudget{MaxSteps: 100}
	_, err = tmpl.Render(longConversation(50), RenderOptions{})
	var over *TemplateBudgetError
	require.ErrorAs(t, err, &over)
	require.Equal(t, "MaxSteps", over.Limit)
	require.Contains(t, err.Error(), `chat template "default"`)

	hostile, err := tok.WithChatTemplate("{% macro f(n) %}{{ f(n+1) }}{% endmacro %}{{ f(0) }}")
	require.NoError(t, err)
	_, err = hostile.Render(longConversation(2), RenderOptions{})
	require.ErrorAs(t, err, &over)
	require.Equal(t, "MaxDepth", over.Limit)
	require.Contains(t, err.Error(), "chat template")

	slow, err := tok.WithChatTemplate("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
	require.NoError(t, err)
	slow.Budget = TemplateBudget{MaxSteps: 1 << 50}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = slow.Render(nil, RenderOptions{Context: ctx})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}
