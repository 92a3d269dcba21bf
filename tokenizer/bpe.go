package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// modelToken is one token of a word: its id and byte range within the word.
type modelToken struct {
	id         int
	start, end int
}

// model turns one pre-tokenized word into tokens.
type model interface {
	tokenize(word string) ([]modelToken, error)
	vocab() map[string]int
}

// pairKey packs the ids of a merge's left and right tokens (ids fit in 32 bits): a uint64 key
// hashes faster than a struct one, and pair lookups are most of BPE's time.
func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

type merge struct{ rank, id int }

// bpe is HF's BPE model. Merging keeps a heap of candidate pairs over a linked
// list of symbols, so a word of n bytes costs O(n log n), not O(n²).
type bpe struct {
	tokenToID      map[string]int
	merges         map[uint64]merge
	asciiIDs       [128]int     // id of each ASCII character as a whole word piece, or -1
	runeIDs        map[rune]int // id of each other one-character token
	unkToken       string
	subwordPrefix  string
	wordSuffix     string
	fuseUnk        bool
	byteFallback   bool
	ignoreMerges   bool
	byteTokenIDs   [256]int // id of "<0xXX>", or -1
	cache          sync.Map // word -> []modelToken
	cacheEntries   int64
	cacheEntriesMu sync.Mutex
}

// bpeCacheLimit bounds the word cache, as HF's does (10,000 entries).
const bpeCacheLimit = 10000

func parseBPE(raw json.RawMessage) (*bpe, error) {
	var m struct {
		Vocab                   map[string]int
		Merges                  []json.RawMessage
		UnkToken                *string `json:"unk_token"`
		ContinuingSubwordPrefix *string `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string `json:"end_of_word_suffix"`
		FuseUnk                 bool    `json:"fuse_unk"`
		ByteFallback            bool    `json:"byte_fallback"`
		IgnoreMerges            bool    `json:"ignore_merges"`
		Dropout                 *float64
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("model BPE: %w", err)
	}
	if m.Dropout != nil && *m.Dropout > 0 {
		return nil, fmt.Errorf("model BPE: dropout %v is not supported (training-time randomness)", *m.Dropout)
	}
	b := &bpe{tokenToID: m.Vocab, merges: make(map[uint64]merge, len(m.Merges)),
		fuseUnk: m.FuseUnk, byteFallback: m.ByteFallback, ignoreMerges: m.IgnoreMerges}
	if m.UnkToken != nil {
		b.unkToken = *m.UnkToken
	}
	if m.ContinuingSubwordPrefix != nil {
		b.subwordPrefix = *m.ContinuingSubwordPrefix
	}
	if m.EndOfWordSuffix != nil {
		b.wordSuffix = *m.EndOfWordSuffix
	}
	for i := range b.byteTokenIDs {
		id, ok := b.tokenToID[fmt.Sprintf("<0x%02X>", i)]
		if !ok {
			id = -1
		}
		b.byteTokenIDs[i] = id
	}
	for c := range b.asciiIDs {
		id, ok := b.tokenToID[string(rune(c))]
		if !ok {
			id = -1
		}
		b.asciiIDs[c] = id
	}
	b.runeIDs = map[rune]int{}
	for tok, id := range b.tokenToID {
		if r, w := utf8.DecodeRuneInString(tok); w == len(tok) && r >= utf8.RuneSelf && r != utf8.RuneError {
			b.runeIDs[r] = id
		}
	}
	for rank, r := range m.Merges {
		left, right, err := parseMerge(r)
		if err != nil {
			return nil, fmt.Errorf("model BPE merges[%d]: %w", rank, err)
		}
		a, okA := b.tokenToID[left]
		c, okC := b.tokenToID[right]
		merged, okM := b.tokenToID[left+strings.TrimPrefix(right, b.subwordPrefix)]
		if !okA || !okC || !okM {
			return nil, fmt.Errorf("model BPE merges[%d]: %q %q: token not in vocab", rank, left, right)
		}
		b.merges[pairKey(a, c)] = merge{rank: rank, id: merged}
	}
	return b, nil
}

// parseMerge reads a merge written as "a b" (older files) or ["a", "b"].
func parseMerge(raw json.RawMessage) (string, string, error) {
	var pair []string
	if err := json.Unmarshal(raw, &pair); err == nil {
		if len(pair) != 2 {
			return "", "", fmt.Errorf("want 2 parts, got %d", len(pair))
		}
		return pair[0], pair[1], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", "", err
	}
	left, right, ok := strings.Cut(s, " ")
	if !ok {
		return "", "", fmt.Errorf("merge %q has no space", s)
	}
	return left, right, nil
}

func (b *bpe) vocab() map[string]int { return b.tokenToID }

func (b *bpe) tokenize(word string) ([]modelToken, error) {
	if word == "" {
		return nil, nil
	}
	if b.ignoreMerges {
		if id, ok := b.tokenToID[word]; ok {
			return []modelToken{{id, 0, len(word)}}, nil
		}
	}
	if hit, ok := b.cache.Load(word); ok {
		return hit.([]modelToken), nil
	}
	toks, err := b.mergeWord(word)
	if err != nil {
		return nil, err
	}
	b.cacheEntriesMu.Lock()
	if b.cacheEntries < bpeCacheLimit && len(word) < 256 {
		b.cacheEntries++
		b.cache.Store(word, toks)
	}
	b.cacheEntriesMu.Unlock()
	return toks, nil
}

// symbol is a node of the doubly linked list of a word being merged.
type symbol struct {
	id         int
	start, end int
	prev, next int
	merged     bool // absorbed into its left neighbour
}

// mergeCandidate is int32-sized: the heap is most of a long word's merge time, and smaller
// entries keep more of it in cache.
type mergeCandidate struct{ rank, pos, id int32 }

func (c mergeCandidate) before(d mergeCandidate) bool {
	return c.rank < d.rank || (c.rank == d.rank && c.pos < d.pos)
}

// mergeHeap is a binary min-heap of candidates by (rank, pos), HF's merge order. It is typed
// rather than container/heap's interface, whose boxing allocated on every push and pop.
type mergeHeap []mergeCandidate

func (h *mergeHeap) push(c mergeCandidate) {
	*h = append(*h, c)
	q := *h
	for i := len(q) - 1; i > 0; {
		parent := (i - 1) / 2
		if !q[i].before(q[parent]) {
			break
		}
		q[i], q[parent] = q[parent], q[i]
		i = parent
	}
}

func (h *mergeHeap) pop() mergeCandidate {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q = q[:last]
	for i := 0; ; {
		child := 2*i + 1
		if child >= len(q) {
			break
		}
		if child+1 < len(q) && q[child+1].before(q[child]) {
			child++
		}
		if !q[child].before(q[i]) {
			break
		}
		q[i], q[child] = q[child], q[i]
		i = child
	}
	*h = q
	return top
}

// mergeWord follows HF's BPE::merge_word and Word::merge_all.
func (b *bpe) mergeWord(word string) ([]modelToken, error) {
	syms := make([]symbol, 0, len(word))
	add := func(id, start, end int) {
		syms = append(syms, symbol{id: id, start: start, end: end, prev: len(syms) - 1, next: len(syms) + 1})
	}
	unkID, unkStart, unkEnd := -1, 0, 0
	plain := b.subwordPrefix == "" && b.wordSuffix == ""
	for i, r := range word {
		if plain {
			// One-character tokens without prefix or suffix: skip the string-keyed lookup.
			id, w := -1, 1
			if r < utf8.RuneSelf {
				id = b.asciiIDs[r]
			} else if known, ok := b.runeIDs[r]; ok {
				id, w = known, utf8.RuneLen(r)
			}
			if id >= 0 {
				if unkID >= 0 {
					add(unkID, unkStart, unkEnd)
					unkID = -1
				}
				add(id, i, i+w)
				continue
			}
		}
		w := utf8.RuneLen(r)
		if r == utf8.RuneError {
			_, w = utf8.DecodeRuneInString(word[i:])
		}
		s := word[i : i+w]
		if i > 0 {
			s = b.subwordPrefix + s
		}
		if i+w == len(word) {
			s += b.wordSuffix
		}
		if id, ok := b.tokenToID[s]; ok {
			if unkID >= 0 {
				add(unkID, unkStart, unkEnd)
				unkID = -1
			}
			add(id, i, i+w)
			continue
		}
		if b.byteFallback && b.addByteTokens(s, i, add) {
			continue
		}
		if b.unkToken == "" {
			continue
		}
		id, ok := b.tokenToID[b.unkToken]
		if !ok {
			return nil, fmt.Errorf("model BPE: unk_token %q not in vocab", b.unkToken)
		}
		switch {
		case unkID >= 0 && b.fuseUnk:
			unkEnd = i + w
		case unkID >= 0:
			add(unkID, unkStart, unkEnd)
			unkID, unkStart, unkEnd = id, i, i+w
		default:
			unkID, unkStart, unkEnd = id, i, i+w
		}
	}
	if unkID >= 0 {
		add(unkID, unkStart, unkEnd)
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}

	h := make(mergeHeap, 0, len(syms))
	for i := 0; i+1 < len(syms); i++ {
		if m, ok := b.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			h.push(mergeCandidate{int32(m.rank), int32(i), int32(m.id)})
		}
	}
	for len(h) > 0 {
		top := h.pop()
		pos, id := int(top.pos), int(top.id)
		cur := &syms[pos]
		if cur.merged || cur.next < 0 {
			continue // merged away or now last
		}
		nextPos := cur.next
		next := &syms[nextPos]
		if m, ok := b.merges[pairKey(cur.id, next.id)]; !ok || m.id != id {
			continue // stale candidate
		}
		cur.id = id
		cur.end = next.end
		cur.next = next.next
		next.merged = true
		if cur.next >= 0 {
			syms[cur.next].prev = pos
		}
		if cur.prev >= 0 {
			if m, ok := b.merges[pairKey(syms[cur.prev].id, cur.id)]; ok {
				h.push(mergeCandidate{int32(m.rank), int32(cur.prev), int32(m.id)})
			}
		}
		if cur.next >= 0 {
			if m, ok := b.merges[pairKey(cur.id, syms[cur.next].id)]; ok {
				h.push(mergeCandidate{int32(m.rank), top.pos, int32(m.id)})
			}
		}
	}
	out := make([]modelToken, 0, len(syms))
	for i := 0; i >= 0 && i < len(syms); i = syms[i].next {
		out = append(out, modelToken{syms[i].id, syms[i].start, syms[i].end})
	}
	return out, nil
}

// addByteTokens emits <0xXX> tokens for s when every byte has one.
func (b *bpe) addByteTokens(s string, at int, add func(id, start, end int)) bool {
	for i := 0; i < len(s); i++ {
		if b.byteTokenIDs[s[i]] < 0 {
			return false
		}
	}
	for i := 0; i < len(s); i++ {
		add(b.byteTokenIDs[s[i]], at+i, at+i+1)
	}
	return true
}
