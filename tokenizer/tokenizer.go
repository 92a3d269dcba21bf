package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dlclark/regexp2"
)

// Tokenizer encodes text to token ids and back, as Hugging Face's `tokenizers`
// does for the same tokenizer.json. It is safe for concurrent use.
type Tokenizer struct {
	// BOS, EOS, PAD and UNK come from tokenizer_config.json; Text is "" and ID -1
	// when the config does not name the token.
	BOS, EOS, PAD, UNK SpecialToken
	// AddBOS and AddEOS are tokenizer_config.json's add_bos_token/add_eos_token.
	// They are informational: which special tokens Encode adds is decided by the
	// post-processor in tokenizer.json, as in `tokenizers`.
	AddBOS, AddEOS bool
	// ModelMaxLength is tokenizer_config.json's model_max_length (math.MaxInt when
	// absent or larger).
	ModelMaxLength int

	model         model
	normalizer    normalizer
	preTokenizer  preTokenizer
	postProcessor postProcessor
	decoder       decoder
	added         map[int]AddedToken
	rawAdded      *addedMatcher
	normAdded     *addedMatcher
	idToToken     map[int]string
	vocabSize     int
	templates     map[string]string
	regexes       regexes
}

// SpecialToken is a named special token: its text and id (-1 when not in the vocabulary).
type SpecialToken struct {
	Text string
	ID   int
}

// Encoding is the result of EncodeWithOffsets.
type Encoding struct {
	IDs []int
	// Offsets are the byte ranges of the input each token came from; tokens added
	// by the post-processor have [0, 0].
	Offsets [][2]int
}

// Load reads dir/tokenizer.json and, when present, dir/tokenizer_config.json and
// dir/chat_template.jinja.
func Load(dir string) (*Tokenizer, error) {
	tokJSON, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	cfgJSON, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := New(tokJSON, cfgJSON)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", dir, err)
	}
	tmpl, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja"))
	switch {
	case err == nil:
		t.templates[defaultTemplateName] = string(tmpl)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return t, nil
}

// New builds a Tokenizer from the contents of tokenizer.json and
// tokenizer_config.json (the latter may be nil).
func New(tokenizerJSON, tokenizerConfigJSON []byte) (*Tokenizer, error) {
	t, err := parseTokenizerJSON(tokenizerJSON)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if err := t.applyConfig(tokenizerConfigJSON); err != nil {
		return nil, fmt.Errorf("tokenizer_config.json: %w", err)
	}
	return t, nil
}

func parseTokenizerJSON(data []byte) (*Tokenizer, error) {
	var file struct {
		AddedTokens   []AddedToken    `json:"added_tokens"`
		Normalizer    json.RawMessage `json:"normalizer"`
		PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
		PostProcessor json.RawMessage `json:"post_processor"`
		Decoder       json.RawMessage `json:"decoder"`
		Model         json.RawMessage `json:"model"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		return nil, err
	}
	t := &Tokenizer{added: map[int]AddedToken{}, idToToken: map[int]string{}, templates: map[string]string{},
		BOS: SpecialToken{ID: -1}, EOS: SpecialToken{ID: -1}, PAD: SpecialToken{ID: -1}, UNK: SpecialToken{ID: -1},
		ModelMaxLength: math.MaxInt}
	var err error
	if t.model, err = parseModel(file.Model); err != nil {
		return nil, err
	}
	if t.normalizer, err = parseNormalizer(file.Normalizer, &t.regexes); err != nil {
		return nil, err
	}
	if t.preTokenizer, err = parsePreTokenizer(file.PreTokenizer, &t.regexes); err != nil {
		return nil, err
	}
	if t.postProcessor, err = parsePostProcessor(file.PostProcessor); err != nil {
		return nil, err
	}
	if t.decoder, err = parseDecoder(file.Decoder, &t.regexes); err != nil {
		return nil, err
	}
	for tok, id := range t.model.vocab() {
		t.idToToken[id] = tok
		t.vocabSize = max(t.vocabSize, id+1)
	}
	var raw, normalized []matchEntry
	for _, a := range file.AddedTokens {
		t.added[a.ID] = a
		t.idToToken[a.ID] = a.Content
		t.vocabSize = max(t.vocabSize, a.ID+1)
		if !a.Normalized {
			raw = append(raw, matchEntry{a.Content, a})
			continue
		}
		text := a.Content
		if t.normalizer != nil {
			n, err := t.normalizer(newNormString(text, 0))
			if err != nil {
				return nil, fmt.Errorf("added token %q: %w", a.Content, err)
			}
			text = n.s
		}
		normalized = append(normalized, matchEntry{text, a})
	}
	t.rawAdded, t.normAdded = newAddedMatcher(raw), newAddedMatcher(normalized)
	return t, nil
}

func parseModel(raw json.RawMessage) (model, error) {
	var head struct{ Type string }
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	switch head.Type {
	case "BPE", "":
		return parseBPE(raw)
	case "Unigram":
		return parseUnigram(raw)
	case "WordPiece":
		return parseWordPiece(raw)
	}
	return nil, fmt.Errorf("model: unsupported type %q", head.Type)
}

func (t *Tokenizer) applyConfig(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	var cfg struct {
		BOSToken       json.RawMessage `json:"bos_token"`
		EOSToken       json.RawMessage `json:"eos_token"`
		PADToken       json.RawMessage `json:"pad_token"`
		UNKToken       json.RawMessage `json:"unk_token"`
		AddBOSToken    bool            `json:"add_bos_token"`
		AddEOSToken    bool            `json:"add_eos_token"`
		ModelMaxLength *float64        `json:"model_max_length"`
		ChatTemplate   json.RawMessage `json:"chat_template"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *SpecialToken
	}{{"bos_token", cfg.BOSToken, &t.BOS}, {"eos_token", cfg.EOSToken, &t.EOS},
		{"pad_token", cfg.PADToken, &t.PAD}, {"unk_token", cfg.UNKToken, &t.UNK}} {
		text, err := tokenText(f.raw)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		*f.dst = SpecialToken{Text: text, ID: -1}
		if id, ok := t.TokenToID(text); ok && text != "" {
			f.dst.ID = id
		}
	}
	t.AddBOS, t.AddEOS = cfg.AddBOSToken, cfg.AddEOSToken
	if cfg.ModelMaxLength != nil && *cfg.ModelMaxLength < math.MaxInt {
		t.ModelMaxLength = int(*cfg.ModelMaxLength)
	}
	return t.parseChatTemplates(cfg.ChatTemplate)
}

// tokenText reads a special token written as a string, null, or an AddedToken object.
func tokenText(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct{ Content string }
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", err
	}
	return obj.Content, nil
}

// VocabSize is the number of ids, added tokens included (transformers' len(tokenizer)).
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// TokenToID returns the id of a token string, added tokens included.
func (t *Tokenizer) TokenToID(token string) (int, bool) {
	for _, a := range t.added {
		if a.Content == token {
			return a.ID, true
		}
	}
	id, ok := t.model.vocab()[token]
	return id, ok
}

// IDToToken returns the token string of an id.
func (t *Tokenizer) IDToToken(id int) (string, bool) {
	s, ok := t.idToToken[id]
	return s, ok
}

// AddedTokens returns tokenizer.json's added tokens by id.
func (t *Tokenizer) AddedTokens() map[int]AddedToken {
	out := make(map[int]AddedToken, len(t.added))
	for id, a := range t.added {
		out[id] = a
	}
	return out
}

// Encode returns the token ids of text; addSpecial runs the post-processor
// (e.g. prepends <s>), like `add_special_tokens=True`.
func (t *Tokenizer) Encode(text string, addSpecial bool) ([]int, error) {
	enc, err := t.EncodeWithOffsets(text, addSpecial)
	return enc.IDs, err
}

// EncodeWithOffsets is Encode that also reports where each token came from.
func (t *Tokenizer) EncodeWithOffsets(text string, addSpecial bool) (Encoding, error) {
	var enc Encoding
	emit := func(id, start, end int) {
		enc.IDs = append(enc.IDs, id)
		enc.Offsets = append(enc.Offsets, [2]int{start, end})
	}
	for _, rawPiece := range t.rawAdded.split(text) {
		if rawPiece.id >= 0 {
			emit(rawPiece.id, rawPiece.start, rawPiece.end)
			continue
		}
		n := newNormString(text[rawPiece.start:rawPiece.end], rawPiece.start)
		if t.normalizer != nil {
			var err error
			if n, err = t.normalizer(n); err != nil {
				return Encoding{}, fmt.Errorf("normalize: %w", err)
			}
		}
		for _, piece := range t.normAdded.split(n.s) {
			if piece.id >= 0 {
				start, end := n.span(piece.start, piece.end)
				emit(piece.id, start, end)
				continue
			}
			if err := t.encodeWords(n.slice(piece.start, piece.end), emit); err != nil {
				return Encoding{}, err
			}
		}
	}
	if addSpecial && t.postProcessor != nil {
		enc.IDs, enc.Offsets = t.postProcessor(enc.IDs, enc.Offsets)
	}
	return enc, nil
}

func (t *Tokenizer) encodeWords(n normString, emit func(id, start, end int)) error {
	if n.s == "" {
		return nil
	}
	words := []normString{n}
	if t.preTokenizer != nil {
		var err error
		if words, err = t.preTokenizer(n); err != nil {
			return fmt.Errorf("pre-tokenize: %w", err)
		}
	}
	for _, w := range words {
		toks, err := t.model.tokenize(w.s)
		if err != nil {
			return err
		}
		for _, tok := range toks {
			start, end := w.span(tok.start, tok.end)
			emit(tok.id, start, end)
		}
	}
	return nil
}

// EncodeBatch encodes texts in parallel.
func (t *Tokenizer) EncodeBatch(texts []string, addSpecial bool) ([][]int, error) {
	out := make([][]int, len(texts))
	errs := make([]error, len(texts))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), len(texts)) {
		wg.Go(func() {
			for i := range next {
				out[i], errs[i] = t.Encode(texts[i], addSpecial)
			}
		})
	}
	for i := range texts {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("text %d: %w", i, err)
		}
	}
	return out, nil
}

// Decode turns ids back into text through the tokenizer.json decoder;
// skipSpecial drops added tokens marked special. Unknown ids are skipped, as HF does.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	text, _ := t.DecodeChecked(ids, skipSpecial) // on a decoder failure: the tokens joined undecoded
	return text
}

// DecodeChecked is Decode reporting a decoder that failed (a tokenizer.json
// Replace regex that timed out); the text is then the tokens joined undecoded.
func (t *Tokenizer) DecodeChecked(ids []int, skipSpecial bool) (string, error) {
	tokens := make([]string, 0, len(ids))
	for _, id := range ids {
		if a, ok := t.added[id]; ok && skipSpecial && a.Special {
			continue
		}
		if s, ok := t.idToToken[id]; ok {
			tokens = append(tokens, s)
		}
	}
	if t.decoder == nil {
		return strings.Join(tokens, " "), nil
	}
	out, err := t.decoder(slices.Clone(tokens))
	if err != nil {
		return strings.Join(tokens, ""), fmt.Errorf("tokenizer.json %w", err)
	}
	return strings.Join(out, ""), nil
}

// SetRegexTimeout sets the time one match of each tokenizer.json regex may take
// (DefaultRegexTimeout when the tokenizer is loaded; d ≤ 0 waits for ever). Call
// it before the tokenizer is used from several goroutines.
func (t *Tokenizer) SetRegexTimeout(d time.Duration) {
	if d <= 0 {
		d = regexp2.DefaultMatchTimeout
	}
	for _, re := range t.regexes {
		re.MatchTimeout = d
	}
}
