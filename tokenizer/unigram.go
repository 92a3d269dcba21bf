package tokenizer

import (
	"encoding/json"
	"fmt"
	"math"
	"unicode/utf8"
)

// unigram is HF's Unigram model: Viterbi over piece log-probabilities.
type unigram struct {
	tokenToID    map[string]int
	scores       []float64
	unkID        int // -1 when the model has none
	byteFallback bool
	fuseUnk      bool
	minScore     float64
	maxPieceLen  int
}

// unkPenalty is HF's K_UNK_PENALTY: an unknown character scores this far below the rarest piece.
const unkPenalty = 10.0

func parseUnigram(raw json.RawMessage) (*unigram, error) {
	var m struct {
		Vocab        [][2]json.RawMessage
		UnkID        *int `json:"unk_id"`
		ByteFallback bool `json:"byte_fallback"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("model Unigram: %w", err)
	}
	u := &unigram{tokenToID: make(map[string]int, len(m.Vocab)), scores: make([]float64, len(m.Vocab)),
		unkID: -1, byteFallback: m.ByteFallback, fuseUnk: true, minScore: math.Inf(1)}
	if m.UnkID != nil {
		u.unkID = *m.UnkID
	}
	for i, entry := range m.Vocab {
		var piece string
		if err := json.Unmarshal(entry[0], &piece); err != nil {
			return nil, fmt.Errorf("model Unigram vocab[%d]: %w", i, err)
		}
		if err := json.Unmarshal(entry[1], &u.scores[i]); err != nil {
			return nil, fmt.Errorf("model Unigram vocab[%d] score: %w", i, err)
		}
		if _, dup := u.tokenToID[piece]; !dup {
			u.tokenToID[piece] = i
		}
		u.minScore = min(u.minScore, u.scores[i])
		u.maxPieceLen = max(u.maxPieceLen, len(piece))
	}
	return u, nil
}

func (u *unigram) vocab() map[string]int { return u.tokenToID }

func (u *unigram) tokenize(word string) ([]modelToken, error) {
	if word == "" {
		return nil, nil
	}
	type node struct {
		score   float64
		startAt int // -1: unreached
		id      int
	}
	best := make([]node, len(word)+1)
	for i := range best {
		best[i].startAt = -1
	}
	unkScore := u.minScore - unkPenalty
	for at := 0; at < len(word); {
		_, runeLen := utf8.DecodeRuneInString(word[at:])
		base := best[at].score
		hasSingle := false
		for end := at + 1; end <= len(word) && end-at <= u.maxPieceLen; end++ {
			id, ok := u.tokenToID[word[at:end]]
			if !ok {
				continue
			}
			cand := base + u.scores[id]
			if t := &best[end]; t.startAt < 0 || cand > t.score {
				*t = node{cand, at, id}
			}
			if end-at == runeLen {
				hasSingle = true
			}
		}
		if !hasSingle {
			if u.unkID < 0 {
				return nil, fmt.Errorf("model Unigram: %q is not in the vocabulary and there is no unk_id", word[at:at+runeLen])
			}
			cand := base + unkScore
			if t := &best[at+runeLen]; t.startAt < 0 || cand > t.score {
				*t = node{cand, at, u.unkID}
			}
		}
		at += runeLen
	}
	// Walk back; consecutive unknowns fuse into one piece.
	var pieces [][2]int
	for end := len(word); end > 0; {
		n := best[end]
		if u.fuseUnk && n.id == u.unkID && len(pieces) > 0 && best[pieces[len(pieces)-1][1]].id == u.unkID {
			pieces[len(pieces)-1][0] = n.startAt
		} else {
			pieces = append(pieces, [2]int{n.startAt, end})
		}
		end = n.startAt
	}
	var out []modelToken
	for i := len(pieces) - 1; i >= 0; i-- {
		a, b := pieces[i][0], pieces[i][1]
		s := word[a:b]
		if id, ok := u.tokenToID[s]; ok {
			out = append(out, modelToken{id, a, b})
			continue
		}
		if u.byteFallback {
			if toks, ok := u.byteTokens(s, a, b); ok {
				out = append(out, toks...)
				continue
			}
		}
		if u.unkID < 0 {
			return nil, fmt.Errorf("model Unigram: no unk_id for %q", s)
		}
		out = append(out, modelToken{u.unkID, a, b})
	}
	return out, nil
}

func (u *unigram) byteTokens(s string, a, b int) ([]modelToken, bool) {
	toks := make([]modelToken, 0, len(s))
	for i := 0; i < len(s); i++ {
		id, ok := u.tokenToID[fmt.Sprintf("<0x%02X>", s[i])]
		if !ok {
			return nil, false
		}
		toks = append(toks, modelToken{id, a, b})
	}
	return toks, true
}
