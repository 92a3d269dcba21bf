package tokenizer

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// normString is text being normalized or pre-tokenized, with, for every byte, the
// byte range of the original input it came from. Hugging Face tracks the same
// alignments; keeping them is what lets the assistant mask map character spans of
// a rendered chat onto tokens.
type normString struct {
	s          string
	start, end []int
}

// newNormString wraps original text found at byte offset base of the input. Every
// byte of a rune maps to the whole rune, as HF aligns per character.
func newNormString(s string, base int) normString {
	n := normString{s: s, start: make([]int, len(s)), end: make([]int, len(s))}
	for i, r := range s {
		w := utf8.RuneLen(r)
		if r == utf8.RuneError {
			_, w = utf8.DecodeRuneInString(s[i:])
		}
		for k := i; k < i+w; k++ {
			n.start[k], n.end[k] = base+i, base+i+w
		}
	}
	return n
}

// span is the original byte range covered by bytes [a, b) of n.
func (n normString) span(a, b int) (int, int) {
	if a >= b || a >= len(n.s) {
		if len(n.end) > 0 && a > 0 {
			return n.end[a-1], n.end[a-1]
		}
		return 0, 0
	}
	return n.start[a], n.end[b-1]
}

func (n normString) slice(a, b int) normString {
	return normString{s: n.s[a:b], start: n.start[a:b], end: n.end[a:b]}
}

// builder accumulates a new normString piece by piece.
type builder struct {
	sb         strings.Builder
	start, end []int
}

// sizedBuilder expects about n output bytes: growing the three buffers once instead of by
// doubling was a fifth of a metaspace tokenizer's encode time.
func sizedBuilder(n int) *builder {
	b := &builder{start: make([]int, 0, n), end: make([]int, 0, n)}
	b.sb.Grow(n)
	return b
}

func (b *builder) add(s string, start, end int) {
	b.sb.WriteString(s)
	for range len(s) {
		b.start = append(b.start, start)
		b.end = append(b.end, end)
	}
}

func (b *builder) addOriginal(n normString, a, c int) {
	b.sb.WriteString(n.s[a:c])
	b.start = append(b.start, n.start[a:c]...)
	b.end = append(b.end, n.end[a:c]...)
}

func (b *builder) done() normString {
	return normString{s: b.sb.String(), start: b.start, end: b.end}
}

// mapRunes replaces every rune by f(rune); the output keeps the rune's alignment.
func (n normString) mapRunes(f func(r rune) string) normString {
	b := sizedBuilder(len(n.s))
	for i, r := range n.s {
		w := utf8.RuneLen(r)
		if r == utf8.RuneError {
			_, w = utf8.DecodeRuneInString(n.s[i:])
		}
		out := f(r)
		if out == string(r) {
			b.addOriginal(n, i, i+w)
			continue
		}
		b.add(out, n.start[i], n.end[i+w-1])
	}
	return b.done()
}

// replaceSpans replaces each byte span [a, b) (sorted, disjoint) with repl.
func (n normString) replaceSpans(spans [][2]int, repl string) normString {
	if len(spans) == 0 {
		return n
	}
	b := sizedBuilder(len(n.s) + len(spans)*len(repl))
	prev := 0
	for _, sp := range spans {
		b.addOriginal(n, prev, sp[0])
		if sp[1] > sp[0] {
			b.add(repl, n.start[sp[0]], n.end[sp[1]-1])
		} else if sp[0] < len(n.s) {
			b.add(repl, n.start[sp[0]], n.start[sp[0]])
		}
		prev = sp[1]
	}
	b.addOriginal(n, prev, len(n.s))
	return b.done()
}

// prepend adds s in front; like HF, the new bytes take the first rune's alignment.
func (n normString) prepend(s string) normString {
	if n.s == "" {
		return n
	}
	_, w := utf8.DecodeRuneInString(n.s)
	b := sizedBuilder(len(s) + len(n.s))
	b.add(s, n.start[0], n.end[w-1])
	b.addOriginal(n, 0, len(n.s))
	return b.done()
}

// unicodeForm applies NFC/NFD/NFKC/NFKD segment by segment, so each output segment
// aligns with the input segment it came from.
func (n normString) unicodeForm(form norm.Form) normString {
	if form.IsNormalString(n.s) {
		return n
	}
	b := sizedBuilder(len(n.s))
	var it norm.Iter
	it.InitString(form, n.s)
	for !it.Done() {
		from := it.Pos()
		seg := it.Next()
		to := it.Pos()
		if to > from && string(seg) == n.s[from:to] {
			b.addOriginal(n, from, to)
			continue
		}
		// The iterator may emit a segment without advancing; it then belongs to
		// the surrounding rune.
		first := min(from, len(n.s)-1)
		last := max(to-1, first)
		b.add(string(seg), n.start[first], n.end[last])
	}
	return b.done()
}
