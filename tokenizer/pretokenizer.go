package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// preTokenizer splits one normalized piece into the words the model sees.
type preTokenizer func(normString) ([]normString, error)

// splitBehavior is HF's SplitDelimiterBehavior: what happens to a matched delimiter.
type splitBehavior int

const (
	splitRemoved splitBehavior = iota
	splitIsolated
	splitMergedWithPrevious
	splitMergedWithNext
	splitContiguous
)

func parseBehavior(s string) (splitBehavior, error) {
	switch strings.ToLower(s) {
	case "removed":
		return splitRemoved, nil
	case "isolated", "":
		return splitIsolated, nil
	case "merged_with_previous", "mergedwithprevious":
		return splitMergedWithPrevious, nil
	case "merged_with_next", "mergedwithnext":
		return splitMergedWithNext, nil
	case "contiguous":
		return splitContiguous, nil
	}
	return 0, fmt.Errorf("unknown split behavior %q", s)
}

// gpt2Pattern is the ByteLevel pre-tokenizer's built-in split.
var gpt2Pattern = regexp2.MustCompile(`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, regexp2.None)

func parsePreTokenizer(raw json.RawMessage, rx *regexes) (preTokenizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var head struct {
		Type              string
		Pretokenizers     []json.RawMessage
		Pattern           json.RawMessage
		Behavior          string
		Invert            bool
		AddPrefixSpace    *bool   `json:"add_prefix_space"`
		UseRegex          *bool   `json:"use_regex"`
		Replacement       string  `json:"replacement"`
		PrependScheme     *string `json:"prepend_scheme"`
		Split             *bool   `json:"split"`
		IndividualDigits  bool    `json:"individual_digits"`
		CharDelimiterChar string  `json:"delimiter"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	switch head.Type {
	case "Sequence":
		var steps []preTokenizer
		for i, r := range head.Pretokenizers {
			p, err := parsePreTokenizer(r, rx)
			if err != nil {
				return nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			if p != nil {
				steps = append(steps, p)
			}
		}
		return func(n normString) ([]normString, error) {
			pieces := []normString{n}
			for _, step := range steps {
				var next []normString
				for _, p := range pieces {
					out, err := step(p)
					if err != nil {
						return nil, err
					}
					next = append(next, out...)
				}
				pieces = next
			}
			return pieces, nil
		}, nil
	case "Split":
		p, err := parsePattern(head.Pattern, rx)
		if err != nil {
			return nil, fmt.Errorf("Split: %w", err)
		}
		b, err := parseBehavior(head.Behavior)
		if err != nil {
			return nil, fmt.Errorf("Split: %w", err)
		}
		return func(n normString) ([]normString, error) {
			spans, err := p.findAll(n.s)
			if err != nil {
				return nil, fmt.Errorf("pre_tokenizer Split: %w", err)
			}
			return splitSpans(n, spans, b, head.Invert), nil
		}, nil
	case "ByteLevel":
		addPrefix := head.AddPrefixSpace == nil || *head.AddPrefixSpace
		useRegex := head.UseRegex == nil || *head.UseRegex
		return func(n normString) ([]normString, error) {
			if addPrefix && !strings.HasPrefix(n.s, " ") {
				n = n.prepend(" ")
			}
			pieces := []normString{n}
			if useRegex {
				spans, err := regexSpans(gpt2Pattern, n.s)
				if err != nil {
					return nil, err
				}
				pieces = splitSpans(n, spans, splitIsolated, false)
			}
			for i, p := range pieces {
				pieces[i] = byteLevelEncode(p)
			}
			return pieces, nil
		}, nil
	case "Metaspace":
		return metaspace(head.Replacement, head.PrependScheme, head.AddPrefixSpace, head.Split)
	case "Whitespace":
		return func(n normString) ([]normString, error) {
			return splitSpans(n, whitespaceSpans(n.s), splitRemoved, true), nil
		}, nil
	case "WhitespaceSplit":
		return charSplitter(unicode.IsSpace, splitRemoved), nil
	case "Punctuation":
		b, err := parseBehavior(head.Behavior)
		if err != nil {
			return nil, fmt.Errorf("Punctuation: %w", err)
		}
		return charSplitter(isPunctuation, b), nil
	case "Digits":
		b := splitContiguous
		if head.IndividualDigits {
			b = splitIsolated
		}
		return charSplitter(unicode.IsDigit, b), nil
	case "BertPreTokenizer":
		ws := charSplitter(unicode.IsSpace, splitRemoved)
		punct := charSplitter(isPunctuation, splitIsolated)
		return func(n normString) ([]normString, error) {
			words, _ := ws(n)
			var out []normString
			for _, w := range words {
				p, _ := punct(w)
				out = append(out, p...)
			}
			return out, nil
		}, nil
	case "CharDelimiterSplit":
		d, _ := utf8.DecodeRuneInString(head.CharDelimiterChar)
		return charSplitter(func(r rune) bool { return r == d }, splitRemoved), nil
	}
	return nil, fmt.Errorf("pre_tokenizer: unsupported type %q", head.Type)
}

// isPunctuation matches Rust's is_ascii_punctuation || Unicode punctuation.
func isPunctuation(r rune) bool {
	return unicode.IsPunct(r) || (r < 128 && unicode.IsSymbol(r))
}

func metaspace(replacement string, scheme *string, addPrefixSpace, split *bool) (preTokenizer, error) {
	if replacement == "" {
		replacement = "▁"
	}
	prepend := "always"
	switch {
	case scheme != nil:
		prepend = *scheme
	case addPrefixSpace != nil && !*addPrefixSpace:
		prepend = "never"
	}
	if prepend != "always" && prepend != "first" && prepend != "never" {
		return nil, fmt.Errorf("Metaspace: unknown prepend_scheme %q", prepend)
	}
	doSplit := split == nil || *split
	space := pattern{literal: " "}
	rep, _ := utf8.DecodeRuneInString(replacement)
	return func(n normString) ([]normString, error) {
		n, _ = space.replaceAll(n, replacement)
		if n.s != "" && !strings.HasPrefix(n.s, replacement) &&
			(prepend == "always" || (prepend == "first" && n.start[0] == 0)) {
			n = n.prepend(replacement)
		}
		if !doSplit {
			return []normString{n}, nil
		}
		return charSplitter(func(r rune) bool { return r == rep }, splitMergedWithNext)(n)
	}, nil
}

// charSplitter splits on every rune that satisfies isDelim, each its own match.
func charSplitter(isDelim func(rune) bool, b splitBehavior) preTokenizer {
	return func(n normString) ([]normString, error) {
		var spans [][2]int
		for i, r := range n.s {
			if isDelim(r) {
				spans = append(spans, [2]int{i, i + utf8.RuneLen(r)})
			}
		}
		return splitSpans(n, spans, b, false), nil
	}
}

// splitSpans implements NormalizedString::split: matches (or, inverted, the text
// between them) are delimiters handled according to b; empty pieces are dropped.
func splitSpans(n normString, matches [][2]int, b splitBehavior, invert bool) []normString {
	type part struct {
		a, b    int
		isMatch bool
	}
	var parts []part
	prev := 0
	for _, m := range matches {
		if m[0] > prev {
			parts = append(parts, part{prev, m[0], invert})
		}
		if m[1] > m[0] {
			parts = append(parts, part{m[0], m[1], !invert})
		}
		prev = m[1]
	}
	if prev < len(n.s) {
		parts = append(parts, part{prev, len(n.s), invert})
	}
	var kept []part
	switch b {
	case splitRemoved:
		for _, p := range parts {
			if !p.isMatch {
				kept = append(kept, p)
			}
		}
	case splitIsolated:
		kept = parts
	case splitMergedWithPrevious:
		previousMatch := false
		for _, p := range parts {
			if p.isMatch && !previousMatch && len(kept) > 0 {
				kept[len(kept)-1].b = p.b
			} else {
				kept = append(kept, p)
			}
			previousMatch = p.isMatch
		}
	case splitMergedWithNext:
		previousMatch := false
		for i := len(parts) - 1; i >= 0; i-- {
			p := parts[i]
			if p.isMatch && !previousMatch && len(kept) > 0 {
				kept[len(kept)-1].a = p.a
			} else {
				kept = append(kept, p)
			}
			previousMatch = p.isMatch
		}
		for i, j := 0, len(kept)-1; i < j; i, j = i+1, j-1 {
			kept[i], kept[j] = kept[j], kept[i]
		}
	case splitContiguous:
		previousMatch := false
		for i, p := range parts {
			if i > 0 && p.isMatch == previousMatch {
				kept[len(kept)-1].b = p.b
			} else {
				kept = append(kept, p)
			}
			previousMatch = p.isMatch
		}
	}
	out := make([]normString, 0, len(kept))
	for _, p := range kept {
		if p.b > p.a {
			out = append(out, n.slice(p.a, p.b))
		}
	}
	return out
}

// byteToRune is GPT-2's bytes_to_unicode table; runeToByte its inverse.
var byteToRune, runeToByte = func() ([256]string, map[rune]byte) {
	var table [256]string
	inverse := make(map[rune]byte, 256)
	extra := rune(256)
	for b := range 256 {
		r := rune(b)
		if !((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
			r = extra
			extra++
		}
		table[b] = string(r)
		inverse[r] = byte(b)
	}
	return table, inverse
}()

// byteLevelEncode maps every byte to its printable stand-in rune.
func byteLevelEncode(n normString) normString {
	b := sizedBuilder(2 * len(n.s))
	for i := 0; i < len(n.s); i++ {
		b.add(byteToRune[n.s[i]], n.start[i], n.end[i])
	}
	return b.done()
}
