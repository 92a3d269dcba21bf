package tokenizer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/ardanlabs/jinja"

	"handbook/tokenizer/internal/sandbox"
)

// DefaultChatTemplate is the alignment-handbook's DEFAULT_CHAT_TEMPLATE (zephyr),
// used when a tokenizer has no chat template of its own.
const DefaultChatTemplate = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"

// ChatMLTemplate is the ChatML layout recipes ask for with a ChatML set-up; its
// assistant turns are {% generation %} blocks, so it yields assistant masks.
const ChatMLTemplate = "{%- for message in messages %}{%- if message['role'] == 'assistant' %}{{- '<|im_start|>assistant\n' }}{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}{{- '\n' }}{%- else %}{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"

const defaultTemplateName = "default"

// Message is one chat turn. Role and Content cover plain chats. A Message decoded
// from JSON keeps the whole object, so tool_calls, reasoning_content, non-string
// content and the key order (which `tojson` output depends on) reach the template.
type Message struct {
	Role    string
	Content string
	raw     json.RawMessage
}

// UnmarshalJSON keeps the full object next to Role and Content.
func (m *Message) UnmarshalJSON(data []byte) error {
	var fields struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(data, &fields); err != nil {
		return fmt.Errorf("message: %w", err)
	}
	m.Role, m.Content = fields.Role, ""
	if !isNull(fields.Content) {
		_ = json.Unmarshal(fields.Content, &m.Content) // non-string content lives on in raw
	}
	m.raw = append(json.RawMessage(nil), data...)
	return nil
}

// MarshalJSON writes the object the message was decoded from, or role and content.
func (m Message) MarshalJSON() ([]byte, error) {
	if m.raw != nil {
		return m.raw, nil
	}
	return json.Marshal(struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}{m.Role, m.Content})
}

// RenderOptions are the template variables besides messages and the special tokens.
type RenderOptions struct {
	// Context cancels a rendering in progress; nil never cancels.
	Context             context.Context
	AddGenerationPrompt bool
	// Tools and Documents are JSON lists (nil: the template sees none).
	Tools, Documents json.RawMessage
	// Kwargs are extra variables such as enable_thinking; json.RawMessage values
	// are decoded keeping key order.
	Kwargs map[string]any
}

// ChatTemplate is a compiled Jinja chat template, rendered like transformers'
// apply_chat_template. A template comes with the model, so it is untrusted:
// rendering runs within Budget (see TemplateBudget) and honours
// RenderOptions.Context.
type ChatTemplate struct {
	// Source is the template text as written.
	Source string
	// Budget bounds each rendering; zero fields take DefaultTemplateBudget's values.
	Budget   TemplateBudget
	compiled *sandbox.Template
	specials map[string]string
}

// TemplateBudget bounds one rendering of a chat template, as Python's sandboxed
// Jinja bounds range() (and its recursion limit bounds macros). Each overrun is
// an error naming the template and the field.
type TemplateBudget struct {
	// MaxRange is the most items one range() may produce (Python's MAX_RANGE).
	MaxRange int
	// MaxDepth bounds nested macro, caller() and recursive-loop calls and the
	// nesting of any value printed or compared.
	MaxDepth int
	// MaxOutput is the most bytes of text one rendering may produce.
	MaxOutput int64
	// MaxMemory is the most bytes of strings, lists and dicts the template's
	// expressions may build in one rendering.
	MaxMemory int64
	// MaxSteps bounds the work: a step per loop iteration, call, filter, test and
	// operator, plus one per 4 KiB of text scanned.
	MaxSteps int64
}

// DefaultTemplateBudget is far above what real chat templates need for
// conversations of thousands of turns, and stops hostile ones within seconds.
func DefaultTemplateBudget() TemplateBudget {
	b := sandbox.DefaultBudget()
	return TemplateBudget{MaxRange: b.MaxRange, MaxDepth: b.MaxDepth, MaxOutput: b.MaxOutput, MaxMemory: b.MaxMemory, MaxSteps: b.MaxSteps}
}

// TemplateBudgetError is a rendering stopped by its budget.
type TemplateBudgetError = sandbox.BudgetError

// generationTag matches {% generation %} and {% endgeneration %}, transformers'
// extension for marking assistant text.
var generationTag = regexp.MustCompile(`\{%([-+]?)\s*(end)?generation\s*([-+]?)%\}`)

// Private-use markers stand in for the generation tags while rendering; the
// replacement keeps the tags' block semantics (trim_blocks, lstrip_blocks).
const (
	generationStart = "\uE000hb-gen\uE000"
	generationEnd   = "\uE001hb-gen\uE001"
)

// CompileChatTemplate compiles source; specials (bos_token, eos_token, …) become
// template variables.
func CompileChatTemplate(source string, specials map[string]string) (*ChatTemplate, error) {
	return compileChatTemplate("chat template", source, specials)
}

// compileChatTemplate compiles source; name says which template it is in errors.
func compileChatTemplate(name, source string, specials map[string]string) (*ChatTemplate, error) {
	if strings.Contains(source, generationStart) || strings.Contains(source, generationEnd) {
		return nil, fmt.Errorf("%s: contains reserved marker text", name)
	}
	rewritten := generationTag.ReplaceAllStringFunc(source, func(tag string) string {
		m := generationTag.FindStringSubmatch(tag)
		marker := generationStart
		if m[2] != "" {
			marker = generationEnd
		}
		return "{%" + m[1] + " if true %}{{ '" + marker + "' }}{% endif " + m[3] + "%}"
	})
	compiled, err := sandbox.Compile(name, rewritten)
	if err != nil {
		return nil, err
	}
	return &ChatTemplate{Source: source, compiled: compiled, specials: specials}, nil
}

// ChatTemplate returns the tokenizer's chat template called name ("" for the
// default one), falling back to DefaultChatTemplate when the tokenizer has none.
func (t *Tokenizer) ChatTemplate(name string) (*ChatTemplate, error) {
	if name == "" {
		name = defaultTemplateName
	}
	source, ok := t.templates[name]
	if !ok && len(t.templates) == 0 && name == defaultTemplateName {
		source, ok = DefaultChatTemplate, true
	}
	if !ok {
		return nil, fmt.Errorf("tokenizer_config.json chat_template: no template named %q", name)
	}
	return compileChatTemplate(fmt.Sprintf("chat template %q", name), source, t.specialTokenVars())
}

// WithChatTemplate compiles source against this tokenizer's special tokens.
func (t *Tokenizer) WithChatTemplate(source string) (*ChatTemplate, error) {
	return CompileChatTemplate(source, t.specialTokenVars())
}

func (t *Tokenizer) specialTokenVars() map[string]string {
	vars := map[string]string{}
	for name, tok := range map[string]SpecialToken{"bos_token": t.BOS, "eos_token": t.EOS, "pad_token": t.PAD, "unk_token": t.UNK} {
		if tok.Text != "" {
			vars[name] = tok.Text
		}
	}
	return vars
}

func (t *Tokenizer) parseChatTemplates(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var single string
	if err := json.Unmarshal(raw, &single); err == nil {
		t.templates[defaultTemplateName] = single
		return nil
	}
	var named []struct{ Name, Template string }
	if err := json.Unmarshal(raw, &named); err != nil {
		return fmt.Errorf("chat_template: want a string or a list of {name, template}: %w", err)
	}
	for _, n := range named {
		t.templates[n.Name] = n.Template
	}
	return nil
}

// Render renders the conversation to text.
func (c *ChatTemplate) Render(messages []Message, opts RenderOptions) (string, error) {
	text, _, err := c.RenderWithSpans(messages, opts)
	return text, err
}

// RenderWithSpans renders and also returns the byte ranges of the text produced
// inside {% generation %} blocks (the assistant's turns).
func (c *ChatTemplate) RenderWithSpans(messages []Message, opts RenderOptions) (string, [][2]int, error) {
	vars, err := c.vars(messages, opts)
	if err != nil {
		return "", nil, err
	}
	b := c.Budget
	out, err := c.compiled.Render(opts.Context, vars, sandbox.Budget{MaxRange: b.MaxRange, MaxDepth: b.MaxDepth,
		MaxOutput: b.MaxOutput, MaxMemory: b.MaxMemory, MaxSteps: b.MaxSteps})
	if err != nil {
		return "", nil, err
	}
	return extractGenerationSpans(out)
}

// vars are the template variables of one rendering, as apply_chat_template sets them.
func (c *ChatTemplate) vars(messages []Message, opts RenderOptions) (map[string]jinja.Value, error) {
	vars := map[string]jinja.Value{
		"add_generation_prompt": jinja.NewBool(opts.AddGenerationPrompt),
		"tools":                 jinja.None(),
		"documents":             jinja.None(),
	}
	for k, v := range c.specials {
		vars[k] = jinja.NewString(v)
	}
	msgs := make([]jinja.Value, len(messages))
	for i, m := range messages {
		data, err := m.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		if msgs[i], err = jsonToValue(data); err != nil {
			return nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
	}
	vars["messages"] = jinja.NewList(msgs)
	for name, raw := range map[string]json.RawMessage{"tools": opts.Tools, "documents": opts.Documents} {
		if isNull(raw) {
			continue
		}
		v, err := jsonToValue(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		vars[name] = v
	}
	for k, v := range opts.Kwargs {
		if raw, ok := v.(json.RawMessage); ok {
			val, err := jsonToValue(raw)
			if err != nil {
				return nil, fmt.Errorf("kwarg %s: %w", k, err)
			}
			vars[k] = val
			continue
		}
		vars[k] = jinja.FromGoValue(v)
	}
	return vars, nil
}

func extractGenerationSpans(out string) (string, [][2]int, error) {
	if !strings.Contains(out, generationStart) {
		return out, nil, nil
	}
	var sb strings.Builder
	var spans [][2]int
	for {
		i := strings.Index(out, generationStart)
		if i < 0 {
			sb.WriteString(out)
			return sb.String(), spans, nil
		}
		sb.WriteString(out[:i])
		out = out[i+len(generationStart):]
		j := strings.Index(out, generationEnd)
		if j < 0 {
			return "", nil, fmt.Errorf("chat template: {%% generation %%} without {%% endgeneration %%}")
		}
		start := sb.Len()
		sb.WriteString(out[:j])
		spans = append(spans, [2]int{start, sb.Len()})
		out = out[j+len(generationEnd):]
	}
}

// jsonToValue decodes JSON into jinja values, keeping object key order and the
// int/float distinction, so `tojson` reproduces Python's output.
func jsonToValue(data []byte) (jinja.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return jinja.Value{}, fmt.Errorf("json: %w", err)
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (jinja.Value, error) {
	tok, err := dec.Token()
	if err != nil {
		return jinja.Value{}, err
	}
	switch tok := tok.(type) {
	case json.Delim:
		if tok == '[' {
			var items []jinja.Value
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return jinja.Value{}, err
				}
				items = append(items, v)
			}
			_, err := dec.Token()
			return jinja.NewList(items), err
		}
		obj := jinja.NewDict()
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return jinja.Value{}, err
			}
			v, err := decodeValue(dec)
			if err != nil {
				return jinja.Value{}, err
			}
			obj.AsDict().Set(key.(string), v)
		}
		_, err := dec.Token()
		return obj, err
	default:
		return jinja.FromGoValue(tok), nil
	}
}

// EncodeChat renders the conversation and encodes it without adding special
// tokens (the template writes them), like apply_chat_template(tokenize=True). The
// mask has 1 for tokens inside {% generation %} blocks, computed as transformers'
// return_assistant_tokens_mask does.
func (t *Tokenizer) EncodeChat(tmpl *ChatTemplate, messages []Message, opts RenderOptions) (ids, assistantMask []int, err error) {
	text, spans, err := tmpl.RenderWithSpans(messages, opts)
	if err != nil {
		return nil, nil, err
	}
	enc, err := t.EncodeWithOffsets(text, false)
	if err != nil {
		return nil, nil, err
	}
	mask := make([]int, len(enc.IDs))
	for _, sp := range spans {
		if sp[1] <= sp[0] {
			continue
		}
		first := tokenAt(enc.Offsets, sp[0])
		if first < 0 {
			break
		}
		// transformers looks up the token of the span's last character.
		lastChar := sp[1] - 1
		for lastChar > sp[0] && !utf8RuneStart(text[lastChar]) {
			lastChar--
		}
		last := tokenAt(enc.Offsets, lastChar)
		end := len(mask)
		if last > 0 {
			end = last + 1
		}
		for i := first; i < end; i++ {
			mask[i] = 1
		}
	}
	return enc.IDs, mask, nil
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// tokenAt is HF's char_to_token: the first token whose range holds pos.
func tokenAt(offsets [][2]int, pos int) int {
	for i, o := range offsets {
		if pos >= o[0] && pos < o[1] {
			return i
		}
	}
	return -1
}
