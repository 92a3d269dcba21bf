package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AddedToken is an entry of tokenizer.json's "added_tokens": text matched before
// the model runs, as HF's AddedVocabulary does.
type AddedToken struct {
	ID      int    `json:"id"`
	Content string `json:"content"`
	// SingleWord matches only when not glued to word characters on either side.
	SingleWord bool `json:"single_word"`
	// LStrip and RStrip make the match swallow whitespace on that side.
	LStrip bool `json:"lstrip"`
	RStrip bool `json:"rstrip"`
	// Normalized tokens are matched in normalized text, the others in the raw input.
	Normalized bool `json:"normalized"`
	// Special tokens are dropped by Decode when skipSpecial is set.
	Special bool `json:"special"`
}

// addedMatcher finds added tokens leftmost-longest, like HF's Aho-Corasick matcher.
type addedMatcher struct {
	byFirstByte map[byte][]matchEntry // longest first
}

type matchEntry struct {
	text  string
	token AddedToken
}

func newAddedMatcher(entries []matchEntry) *addedMatcher {
	m := &addedMatcher{byFirstByte: map[byte][]matchEntry{}}
	for _, e := range entries {
		if e.text != "" {
			m.byFirstByte[e.text[0]] = append(m.byFirstByte[e.text[0]], e)
		}
	}
	for _, list := range m.byFirstByte {
		sort.SliceStable(list, func(i, j int) bool { return len(list[i].text) > len(list[j].text) })
	}
	return m
}

// addedSplit is a piece of the input: an added token (id >= 0) or text to tokenize.
type addedSplit struct {
	id         int
	start, end int
}

// split follows AddedVocabulary::find_matches: matches that fail single_word are
// skipped, not retried inside; lstrip/rstrip widen the match over whitespace.
func (m *addedMatcher) split(s string) []addedSplit {
	var out []addedSplit
	if m == nil || len(m.byFirstByte) == 0 {
		return []addedSplit{{-1, 0, len(s)}}
	}
	done := 0
	for pos := 0; pos < len(s); {
		var hit *matchEntry
		for i, e := range m.byFirstByte[s[pos]] {
			if strings.HasPrefix(s[pos:], e.text) {
				hit = &m.byFirstByte[s[pos]][i]
				break
			}
		}
		if hit == nil {
			pos++
			continue
		}
		start, stop := pos, pos+len(hit.text)
		pos = stop
		tok := hit.token
		if tok.SingleWord && (endsWithWordChar(s[:start]) || startsWithWordChar(s[stop:])) {
			continue
		}
		if tok.LStrip {
			start = max(len(strings.TrimRightFunc(s[:start], unicode.IsSpace)), done)
		}
		if tok.RStrip {
			stop = len(s) - len(strings.TrimLeftFunc(s[stop:], unicode.IsSpace))
			pos = stop
		}
		if done < start {
			out = append(out, addedSplit{-1, done, start})
		}
		out = append(out, addedSplit{tok.ID, start, stop})
		done = stop
	}
	if done < len(s) {
		out = append(out, addedSplit{-1, done, len(s)})
	}
	return out
}

func isWordChar(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r)
}

func endsWithWordChar(s string) bool {
	r, n := utf8.DecodeLastRuneInString(s)
	return n > 0 && isWordChar(r)
}

func startsWithWordChar(s string) bool {
	r, n := utf8.DecodeRuneInString(s)
	return n > 0 && isWordChar(r)
}
