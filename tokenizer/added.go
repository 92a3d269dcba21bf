package tokenizer

import (
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

// addedMatcher finds added tokens leftmost-longest, like HF's Aho-Corasick matcher: a byte trie
// gives the longest token at each position in one walk. (Trying every token with the position's
// first byte was 69% of Gemma3's encode time: it has thousands of added tokens starting with '<'.)
type addedMatcher struct {
	entries []matchEntry
	first   [256]int32 // node reached by each first byte, or -1
	nodes   []trieNode
}

type trieNode struct {
	edges []trieEdge
	entry int32 // index into entries of the token ending here, or -1
}

type trieEdge struct {
	b    byte
	next int32
}

type matchEntry struct {
	text  string
	token AddedToken
}

func newAddedMatcher(entries []matchEntry) *addedMatcher {
	m := &addedMatcher{}
	for i := range m.first {
		m.first[i] = -1
	}
	for _, e := range entries {
		if e.text == "" {
			continue
		}
		node := m.first[e.text[0]]
		if node < 0 {
			node = m.newNode()
			m.first[e.text[0]] = node
		}
		for i := 1; i < len(e.text); i++ {
			node = m.child(node, e.text[i], true)
		}
		if m.nodes[node].entry < 0 { // the first of duplicate texts wins, as before
			m.nodes[node].entry = int32(len(m.entries))
			m.entries = append(m.entries, e)
		}
	}
	return m
}

func (m *addedMatcher) newNode() int32 {
	m.nodes = append(m.nodes, trieNode{entry: -1})
	return int32(len(m.nodes) - 1)
}

// child follows node's edge for b, adding it when create is set; -1 when there is none.
func (m *addedMatcher) child(node int32, b byte, create bool) int32 {
	for _, e := range m.nodes[node].edges {
		if e.b == b {
			return e.next
		}
	}
	if !create {
		return -1
	}
	next := m.newNode()
	m.nodes[node].edges = append(m.nodes[node].edges, trieEdge{b, next})
	return next
}

// longest returns the longest added token that s starts with, or nil.
func (m *addedMatcher) longest(s string) *matchEntry {
	node := m.first[s[0]]
	hit := int32(-1)
	for i := 1; node >= 0; i++ {
		if e := m.nodes[node].entry; e >= 0 {
			hit = e
		}
		if i == len(s) {
			break
		}
		node = m.child(node, s[i], false)
	}
	if hit < 0 {
		return nil
	}
	return &m.entries[hit]
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
	if m == nil || len(m.entries) == 0 {
		return []addedSplit{{-1, 0, len(s)}}
	}
	done := 0
	for pos := 0; pos < len(s); {
		hit := m.longest(s[pos:])
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
