package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The pre-tokenizer regexes of Llama-3 and Qwen2/3,
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// (Qwen: \p{N} instead of \p{N}{1,3}), are most of the encode time when run on
// regexp2, so these exact strings get a hand-written matcher with the same
// leftmost-alternative backtracking semantics and HF's Unicode classes (onigRune).
// Any other regex still runs on regexp2. TestFastSplitMatchesRegexp2 checks the
// two agree.
const (
	llama3SplitRegex = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwenSplitRegex   = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// fastSplitters maps a regex source to its matcher's digit-run limit.
var fastSplitters = map[string]int{llama3SplitRegex: 3, qwenSplitRegex: 1}

const (
	clsOther = iota // [^\s\p{L}\p{N}]
	clsL
	clsN
	clsSpace // \s other than \r \n
	clsCRLF  // \r or \n
)

func runeClass(r rune) uint8 {
	if r < utf8.RuneSelf {
		return asciiClass[r]
	}
	r = onigRune(r)
	switch {
	case unicode.IsLetter(r):
		return clsL
	case unicode.IsNumber(r):
		return clsN
	case unicode.Is(unicode.White_Space, r):
		return clsSpace
	}
	return clsOther
}

var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for c := range t {
		switch r := rune(c); {
		case r == '\r' || r == '\n':
			t[c] = clsCRLF
		case 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z':
			t[c] = clsL
		case '0' <= r && r <= '9':
			t[c] = clsN
		case r == ' ' || r == '\t' || r == '\v' || r == '\f':
			t[c] = clsSpace
		default:
			t[c] = clsOther
		}
	}
	return t
}()

// contractionLen returns the length in runes of (?i:'s|'t|'re|'ve|'m|'ll|'d) at
// rs[i] (rs[i] == '\”), or 0. Oniguruma folds case with Unicode rules, so 's also
// matches 'ſ (U+017F).
func contractionLen(rs []rune, i int) int {
	at := func(k int) rune {
		if i+k < len(rs) {
			r := rs[i+k]
			if r == 0x017F {
				return 's'
			}
			return unicode.ToLower(r)
		}
		return -1
	}
	switch at(1) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if at(2) == 'e' {
			return 3
		}
	case 'l':
		if at(2) == 'l' {
			return 3
		}
	}
	return 0
}

// fastSplitSpans returns, as byte spans of s, the matches of llama3SplitRegex
// (maxDigits 3) or qwenSplitRegex (maxDigits 1).
func fastSplitSpans(s string, maxDigits int) [][2]int {
	rs := make([]rune, 0, len(s))
	cls := make([]uint8, 0, len(s))
	byteAt := make([]int, 0, len(s)+1)
	for off, r := range s {
		byteAt = append(byteAt, off)
		rs = append(rs, r)
		cls = append(cls, runeClass(r))
	}
	n := len(rs)
	byteAt = append(byteAt, len(s))
	spans := make([][2]int, 0, n/3+1)
	for i := 0; i < n; {
		j := matchAt(rs, cls, i, maxDigits)
		spans = append(spans, [2]int{byteAt[i], byteAt[j]})
		i = j
	}
	return spans
}

// matchAt returns the end of the match that starts at i (every position starts one).
func matchAt(rs []rune, cls []uint8, i, maxDigits int) int {
	n := len(rs)
	c := cls[i]
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if rs[i] == '\'' {
		if k := contractionLen(rs, i); k > 0 {
			return i + k
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if c == clsL || (c == clsOther || c == clsSpace) && i+1 < n && cls[i+1] == clsL {
		j := i + 1
		for j < n && cls[j] == clsL {
			j++
		}
		return j
	}
	// \p{N}{1,maxDigits}
	if c == clsN {
		j := i + 1
		for j < n && j-i < maxDigits && cls[j] == clsN {
			j++
		}
		return j
	}
	//  ?[^\s\p{L}\p{N}]+[\r\n]*
	j := i
	if rs[j] == ' ' {
		j++
	}
	if j < n && cls[j] == clsOther {
		for j < n && cls[j] == clsOther {
			j++
		}
		for j < n && cls[j] == clsCRLF {
			j++
		}
		return j
	}
	// Here rs[i] is \s: \s*[\r\n]+ | \s+(?!\S) | \s+
	k := i
	for k < n && (cls[k] == clsSpace || cls[k] == clsCRLF) {
		k++
	}
	for p := k - 1; p >= i; p-- {
		if cls[p] == clsCRLF {
			return p + 1
		}
	}
	if k == n || k-i == 1 {
		return k
	}
	return k - 1
}
