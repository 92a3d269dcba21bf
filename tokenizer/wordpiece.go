package tokenizer

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// wordPiece is HF's WordPiece model: greedy longest-match-first.
type wordPiece struct {
	tokenToID     map[string]int
	unkToken      string
	subwordPrefix string
	maxChars      int
}

func parseWordPiece(raw json.RawMessage) (*wordPiece, error) {
	m := struct {
		Vocab                   map[string]int
		UnkToken                string `json:"unk_token"`
		ContinuingSubwordPrefix string `json:"continuing_subword_prefix"`
		MaxInputCharsPerWord    int    `json:"max_input_chars_per_word"`
	}{UnkToken: "[UNK]", ContinuingSubwordPrefix: "##", MaxInputCharsPerWord: 100}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("model WordPiece: %w", err)
	}
	return &wordPiece{m.Vocab, m.UnkToken, m.ContinuingSubwordPrefix, m.MaxInputCharsPerWord}, nil
}

func (w *wordPiece) vocab() map[string]int { return w.tokenToID }

func (w *wordPiece) tokenize(word string) ([]modelToken, error) {
	unk := func() ([]modelToken, error) {
		id, ok := w.tokenToID[w.unkToken]
		if !ok {
			return nil, fmt.Errorf("model WordPiece: unk_token %q not in vocab", w.unkToken)
		}
		return []modelToken{{id, 0, len(word)}}, nil
	}
	if utf8.RuneCountInString(word) > w.maxChars {
		return unk()
	}
	var out []modelToken
	for start := 0; start < len(word); {
		found := false
		for end := len(word); end > start; {
			s := word[start:end]
			if start > 0 {
				s = w.subwordPrefix + s
			}
			if id, ok := w.tokenToID[s]; ok {
				out = append(out, modelToken{id, start, end})
				start, found = end, true
				break
			}
			_, size := utf8.DecodeLastRuneInString(word[start:end])
			end -= size
		}
		if !found {
			return unk()
		}
	}
	return out, nil
}
