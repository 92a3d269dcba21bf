package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"handbook/tokenizer"
)

// Format is the layout of a dataset's rows, decided by its columns as TRL does.
type Format int

const (
	// FormatText is plain text in a `text` column (continued pre-training).
	FormatText Format = iota + 1
	// FormatMessages is a conversation in a `messages` column (or ShareGPT
	// `conversations`, converted to role/content).
	FormatMessages
	// FormatPromptCompletion has `prompt` and `completion`, both strings or both
	// message lists.
	FormatPromptCompletion
	// FormatPreference has `chosen` and `rejected` (strings or message lists),
	// with an explicit `prompt` or one shared by both to be extracted.
	FormatPreference
)

func (f Format) String() string {
	switch f {
	case FormatText:
		return "text"
	case FormatMessages:
		return "messages"
	case FormatPromptCompletion:
		return "prompt-completion"
	case FormatPreference:
		return "preference"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Turns is a piece of an example: plain text, or messages when the data is
// conversational.
type Turns struct {
	Text     string
	Messages []tokenizer.Message
}

// Conversational reports whether t holds messages.
func (t Turns) Conversational() bool { return t.Messages != nil }

// Example is one parsed row.
type Example struct {
	Format Format
	// Text is the FormatText text.
	Text string
	// Messages is the FormatMessages conversation.
	Messages []tokenizer.Message
	// Prompt and Completion (FormatPromptCompletion), Prompt, Chosen and
	// Rejected (FormatPreference, Prompt after extraction).
	Prompt, Completion, Chosen, Rejected Turns
	// Tools is the row's `tools` column as a JSON list (nil when absent).
	Tools json.RawMessage
	// RefLogps are the row's ref_chosen_logps and ref_rejected_logps columns (a preference
	// dataset with precomputed reference log-probs, as TRL writes them); nil when absent.
	RefLogps *[2]float64
	// TemplateKwargs is the row's `chat_template_kwargs` column (e.g.
	// enable_thinking); values are json.RawMessage.
	TemplateKwargs map[string]any
}

// Conversational reports whether the example is rendered with a chat template.
func (e Example) Conversational() bool {
	switch e.Format {
	case FormatMessages:
		return true
	case FormatPromptCompletion:
		return e.Prompt.Conversational()
	case FormatPreference:
		return e.Chosen.Conversational()
	}
	return false
}

// KnownRoles are the message roles accepted in conversational data.
var KnownRoles = []string{"system", "developer", "user", "assistant", "tool", "ipython"}

// ParseOptions tune ParseRow.
type ParseOptions struct {
	// TextField is the text column of FormatText (default "text", TRL's
	// dataset_text_field).
	TextField string
}

// DetectFormat returns the format a row's columns imply: chosen+rejected is
// preference, prompt+completion prompt-completion, messages (or
// conversations) a conversation, the text field plain text.
func DetectFormat(row Row, opts ParseOptions) (Format, error) {
	has := func(k string) bool { _, ok := row[k]; return ok }
	switch {
	case has("chosen") && has("rejected"):
		return FormatPreference, nil
	case has("prompt") && has("completion"):
		return FormatPromptCompletion, nil
	case has("messages") || has("conversations"):
		return FormatMessages, nil
	case has(textField(opts)):
		return FormatText, nil
	}
	return 0, fmt.Errorf("columns %v match no format (want messages, text field %q, prompt+completion, or chosen+rejected)", sortedKeys(row), textField(opts))
}

func textField(opts ParseOptions) string {
	if opts.TextField == "" {
		return "text"
	}
	return opts.TextField
}

// ParseRow parses a row into an Example of the given format. For preference
// rows without a conversational prompt the shared prompt is extracted from
// chosen and rejected (ExtractPrompt). Errors name the column and, inside
// message lists, the message index.
func ParseRow(row Row, format Format, opts ParseOptions) (Example, error) {
	ex := Example{Format: format}
	var err error
	switch format {
	case FormatText:
		ex.Text, err = stringColumn(row, textField(opts))
	case FormatMessages:
		if raw, ok := row["messages"]; ok {
			ex.Messages, err = parseMessages("messages", raw)
		} else if raw, ok := row["conversations"]; ok {
			ex.Messages, err = parseShareGPT(raw)
		} else {
			err = fmt.Errorf("missing column \"messages\"")
		}
		if err == nil && len(ex.Messages) == 0 {
			err = fmt.Errorf("column \"messages\": empty conversation")
		}
	case FormatPromptCompletion:
		if ex.Prompt, err = turnsColumn(row, "prompt"); err != nil {
			break
		}
		if ex.Completion, err = turnsColumn(row, "completion"); err != nil {
			break
		}
		if ex.Prompt.Conversational() != ex.Completion.Conversational() {
			err = fmt.Errorf("columns \"prompt\" and \"completion\": one is a message list, the other a string")
		}
	case FormatPreference:
		err = parsePreference(row, &ex)
	default:
		err = fmt.Errorf("unknown format %v", format)
	}
	if err != nil {
		return Example{}, err
	}
	if raw, ok := row["tools"]; ok && !isJSONNull(raw) {
		if ex.Tools, err = toolsJSON(raw); err != nil {
			return Example{}, err
		}
	}
	if raw, ok := row["chat_template_kwargs"]; ok && !isJSONNull(raw) {
		if ex.TemplateKwargs, err = kwargsJSON(raw); err != nil {
			return Example{}, err
		}
	}
	return ex, nil
}

func parsePreference(row Row, ex *Example) error {
	var err error
	if ex.Chosen, err = turnsColumn(row, "chosen"); err != nil {
		return err
	}
	if ex.Rejected, err = turnsColumn(row, "rejected"); err != nil {
		return err
	}
	if ex.Chosen.Conversational() != ex.Rejected.Conversational() {
		return fmt.Errorf("columns \"chosen\" and \"rejected\": one is a message list, the other a string")
	}
	if err := parseRefLogps(row, ex); err != nil {
		return err
	}
	if raw, ok := row["prompt"]; ok && !isJSONNull(raw) {
		prompt, err := turnsColumn(row, "prompt")
		if err != nil {
			return err
		}
		// As TRL's maybe_extract_prompt: a prompt of the other kind (a string
		// next to message lists) is ignored and the prompt extracted.
		if prompt.Conversational() == ex.Chosen.Conversational() {
			ex.Prompt = prompt
			return nil
		}
	}
	ex.Prompt, ex.Chosen, ex.Rejected = ExtractPrompt(ex.Chosen, ex.Rejected)
	if ex.Chosen.Conversational() && (len(ex.Chosen.Messages) == 0 || len(ex.Rejected.Messages) == 0) {
		return fmt.Errorf("columns \"chosen\" and \"rejected\": no differing turns after the shared prompt")
	}
	return nil
}

// parseRefLogps reads ref_chosen_logps and ref_rejected_logps: both numbers, or neither.
func parseRefLogps(row Row, ex *Example) error {
	rawC, okC := row["ref_chosen_logps"]
	rawR, okR := row["ref_rejected_logps"]
	if !okC && !okR {
		return nil
	}
	if okC != okR {
		return fmt.Errorf("columns \"ref_chosen_logps\" and \"ref_rejected_logps\" come together; only one is present")
	}
	var ref [2]float64
	for i, raw := range []json.RawMessage{rawC, rawR} {
		if err := json.Unmarshal(raw, &ref[i]); err != nil {
			return fmt.Errorf("column %q: want a number, got %s", []string{"ref_chosen_logps", "ref_rejected_logps"}[i], raw)
		}
	}
	ex.RefLogps = &ref
	return nil
}

// ExtractPrompt splits chosen and rejected into their longest common prefix
// (the prompt) and the rest, as TRL's extract_prompt does — including its
// quirks: for strings a space before the split point goes with the
// completions, and when one side is a prefix of the other the prompt stops one
// turn (or character) short of it.
func ExtractPrompt(chosen, rejected Turns) (prompt, c, r Turns) {
	if chosen.Conversational() {
		n := min(len(chosen.Messages), len(rejected.Messages))
		idx := n - 1
		for i := 0; i < n; i++ {
			if !sameMessage(chosen.Messages[i], rejected.Messages[i]) {
				idx = i
				break
			}
		}
		idx = max(idx, 0)
		return Turns{Messages: slices.Clone(chosen.Messages[:idx])},
			Turns{Messages: chosen.Messages[idx:]}, Turns{Messages: rejected.Messages[idx:]}
	}
	a, b := chosen.Text, rejected.Text
	n := min(len(a), len(b))
	idx, differ := n-1, false
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			idx, differ = i, true
			break
		}
	}
	idx = max(idx, 0)
	for idx > 0 && !utf8.RuneStart(a[idx]) { // Python compares characters, not bytes
		idx--
	}
	if differ && idx > 0 && a[idx-1] == ' ' {
		idx--
	}
	return Turns{Text: a[:idx]}, Turns{Text: a[idx:]}, Turns{Text: b[idx:]}
}

func sameMessage(a, b tokenizer.Message) bool {
	ja, erra := a.MarshalJSON()
	jb, errb := b.MarshalJSON()
	return erra == nil && errb == nil && bytes.Equal(ja, jb)
}

func isJSONNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

func stringColumn(row Row, col string) (string, error) {
	raw, ok := row[col]
	if !ok {
		return "", fmt.Errorf("missing column %q", col)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || isJSONNull(raw) {
		return "", fmt.Errorf("column %q: want a string, got %s", col, describeJSON(raw))
	}
	return s, nil
}

func turnsColumn(row Row, col string) (Turns, error) {
	raw, ok := row[col]
	if !ok {
		return Turns{}, fmt.Errorf("missing column %q", col)
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		msgs, err := parseMessages(col, raw)
		if err != nil {
			return Turns{}, err
		}
		if msgs == nil {
			msgs = []tokenizer.Message{}
		}
		return Turns{Messages: msgs}, nil
	}
	s, err := stringColumn(row, col)
	if err != nil {
		return Turns{}, fmt.Errorf("column %q: want a string or a list of messages, got %s", col, describeJSON(raw))
	}
	return Turns{Text: s}, nil
}

// parseMessages decodes a list of {role, content, …} objects, checking roles
// and content types.
func parseMessages(col string, raw json.RawMessage) ([]tokenizer.Message, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || isJSONNull(raw) {
		return nil, fmt.Errorf("column %q: want a list of messages, got %s", col, describeJSON(raw))
	}
	msgs := make([]tokenizer.Message, len(items))
	for i, item := range items {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(item, &fields); err != nil || fields == nil {
			return nil, fmt.Errorf("column %q: message %d: want an object, got %s", col, i, describeJSON(item))
		}
		var role string
		if err := json.Unmarshal(fields["role"], &role); err != nil || fields["role"] == nil {
			return nil, fmt.Errorf("column %q: message %d: field \"role\": want a string, got %s", col, i, describeJSON(fields["role"]))
		}
		if !slices.Contains(KnownRoles, role) {
			return nil, fmt.Errorf("column %q: message %d: field \"role\": unknown role %q (known: %s)", col, i, role, strings.Join(KnownRoles, ", "))
		}
		content, ok := fields["content"]
		if !ok {
			return nil, fmt.Errorf("column %q: message %d: missing field \"content\"", col, i)
		}
		if c := bytes.TrimSpace(content); len(c) == 0 || (c[0] != '"' && c[0] != '[' && !isJSONNull(c)) {
			return nil, fmt.Errorf("column %q: message %d: field \"content\": want a string, a list of parts or null, got %s", col, i, describeJSON(content))
		}
		if err := msgs[i].UnmarshalJSON(item); err != nil {
			return nil, fmt.Errorf("column %q: message %d: %w", col, i, err)
		}
	}
	return msgs, nil
}

// parseShareGPT converts ShareGPT turns ({from: human|gpt|system, value}) to
// messages, as TRL's maybe_convert_to_chatml does.
func parseShareGPT(raw json.RawMessage) ([]tokenizer.Message, error) {
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("column \"conversations\": want a list of {from, value}, got %s", describeJSON(raw))
	}
	roles := map[string]string{"human": "user", "gpt": "assistant", "system": "system", "user": "user", "assistant": "assistant"}
	msgs := make([]tokenizer.Message, len(items))
	for i, it := range items {
		var from, value string
		if err := json.Unmarshal(it["from"], &from); err != nil {
			return nil, fmt.Errorf("column \"conversations\": turn %d: field \"from\": want a string, got %s", i, describeJSON(it["from"]))
		}
		role, ok := roles[from]
		if !ok {
			return nil, fmt.Errorf("column \"conversations\": turn %d: field \"from\": unknown role %q", i, from)
		}
		if err := json.Unmarshal(it["value"], &value); err != nil {
			return nil, fmt.Errorf("column \"conversations\": turn %d: field \"value\": want a string, got %s", i, describeJSON(it["value"]))
		}
		msgs[i] = tokenizer.Message{Role: role, Content: value}
	}
	return msgs, nil
}

func toolsJSON(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' { // a JSON string holding the list, as TRL accepts
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("column \"tools\": %w", err)
		}
		raw = json.RawMessage(s)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("column \"tools\": want a list of tools, got %s", describeJSON(raw))
	}
	return raw, nil
}

func kwargsJSON(raw json.RawMessage) (map[string]any, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("column \"chat_template_kwargs\": want an object, got %s", describeJSON(raw))
	}
	out := make(map[string]any, len(fields))
	for k, v := range fields {
		if isJSONNull(v) {
			continue // Arrow fills absent struct fields with null
		}
		out[k] = v
	}
	return out, nil
}

// describeJSON names a JSON value's type for error messages.
func describeJSON(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '[':
		return "a list"
	case '{':
		return "an object"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// LegacyTexts are the strings the handbook's legacy apply_chat_template
// builds for its "dpo"/"orpo" task.
type LegacyTexts struct {
	Prompt, Chosen, Rejected string
}

// MaybeInsertSystemMessage prepends an empty system message when the first
// message is not one and the template mentions "system" or "<|im_start|>",
// the handbook's legacy auto_insert_empty_system_msg.
func MaybeInsertSystemMessage(msgs []tokenizer.Message, tmpl *tokenizer.ChatTemplate) []tokenizer.Message {
	if len(msgs) > 0 && msgs[0].Role == "system" {
		return msgs
	}
	if strings.Contains(tmpl.Source, "system") || strings.Contains(tmpl.Source, "<|im_start|>") {
		return append([]tokenizer.Message{{Role: "system", Content: ""}}, msgs...)
	}
	return msgs
}

// LegacyPreferenceTexts renders a conversational preference example as the
// handbook's legacy apply_chat_template(task="dpo") did: the prompt is every
// turn but the last of chosen (or the explicit prompt), chosen and rejected
// only their final turn, each rendered alone, with a leading BOS text removed
// from chosen and rejected; insertSystem is auto_insert_empty_system_msg.
func LegacyPreferenceTexts(tmpl *tokenizer.ChatTemplate, bos string, chosen, rejected []tokenizer.Message, prompt []tokenizer.Message, insertSystem bool) (LegacyTexts, error) {
	if len(chosen) == 0 || len(rejected) == 0 {
		return LegacyTexts{}, fmt.Errorf("chosen and rejected must hold at least one message")
	}
	c, r := chosen, rejected
	if prompt == nil {
		prompt = slices.Clone(chosen[:len(chosen)-1])
		c, r = chosen[len(chosen)-1:], rejected[len(rejected)-1:]
	}
	if insertSystem {
		prompt = MaybeInsertSystemMessage(prompt, tmpl)
	}
	var out LegacyTexts
	var err error
	if out.Prompt, err = tmpl.Render(prompt, tokenizer.RenderOptions{}); err != nil {
		return LegacyTexts{}, fmt.Errorf("prompt: %w", err)
	}
	if out.Chosen, err = tmpl.Render(c, tokenizer.RenderOptions{}); err != nil {
		return LegacyTexts{}, fmt.Errorf("chosen: %w", err)
	}
	if out.Rejected, err = tmpl.Render(r, tokenizer.RenderOptions{}); err != nil {
		return LegacyTexts{}, fmt.Errorf("rejected: %w", err)
	}
	if bos != "" {
		out.Chosen = strings.TrimPrefix(out.Chosen, bos)
		out.Rejected = strings.TrimPrefix(out.Rejected, bos)
	}
	return out, nil
}
