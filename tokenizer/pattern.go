package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// DefaultRegexTimeout bounds one regex match of a tokenizer.json pattern. HF's
// Oniguruma gives up on catastrophic backtracking with its retry limit (an error,
// within tens of milliseconds); regexp2 backtracks for ever without a timeout.
// Real patterns decide each match in microseconds.
const DefaultRegexTimeout = time.Second

// regexes collects a tokenizer's compiled patterns so their timeout can be set.
type regexes []*regexp2.Regexp

// pattern is the {"String": …} or {"Regex": …} object of Split, Replace and
// decoders. Regexes run on regexp2 because HF's (Oniguruma) patterns use
// lookahead, which Go's RE2 lacks, and because RE2's \s, \d and \w are ASCII
// while Oniguruma's are Unicode: RE2 would match differently, not just faster.
// regexp2 backtracks, so each match runs under a timeout (DefaultRegexTimeout,
// Tokenizer.SetRegexTimeout) and a pathological pattern is an error naming it.
type pattern struct {
	literal string
	re      *regexp2.Regexp
	// fastDigits > 0: re is llama3SplitRegex or qwenSplitRegex, matched by
	// fastSplitSpans instead (see fastsplit.go).
	fastDigits int
}

func parsePattern(raw json.RawMessage, rx *regexes) (pattern, error) {
	var p struct {
		String *string
		Regex  *string
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return pattern{}, fmt.Errorf("pattern: %w", err)
	}
	switch {
	case p.String != nil:
		return pattern{literal: *p.String}, nil
	case p.Regex != nil:
		re, err := regexp2.Compile(*p.Regex, regexp2.None)
		if err != nil {
			return pattern{}, fmt.Errorf("pattern regex %q: %w", *p.Regex, err)
		}
		re.MatchTimeout = DefaultRegexTimeout
		*rx = append(*rx, re)
		return pattern{re: re, fastDigits: fastSplitters[*p.Regex]}, nil
	}
	return pattern{}, fmt.Errorf("pattern %s: want a String or Regex key", raw)
}

// findAll returns the byte spans of the non-overlapping matches in s.
func (p pattern) findAll(s string) ([][2]int, error) {
	if p.re == nil {
		if p.literal == "" {
			return nil, nil
		}
		var spans [][2]int
		for i := 0; ; {
			k := strings.Index(s[i:], p.literal)
			if k < 0 {
				return spans, nil
			}
			spans = append(spans, [2]int{i + k, i + k + len(p.literal)})
			i += k + len(p.literal)
		}
	}
	if p.fastDigits > 0 {
		return fastSplitSpans(s, p.fastDigits), nil
	}
	return regexSpans(p.re, s)
}

// regexSpans converts regexp2's rune indices into byte offsets.
func regexSpans(re *regexp2.Regexp, s string) ([][2]int, error) {
	runes := []rune(s)
	byteAt := make([]int, len(runes)+1)
	off := 0
	for i, r := range runes {
		byteAt[i] = off
		if r == utf8.RuneError {
			_, w := utf8.DecodeRuneInString(s[off:])
			off += w
		} else {
			off += utf8.RuneLen(r)
			// Match with HF's Unicode version, not Go's (see unicode_compat.go).
			runes[i] = onigRune(r)
		}
	}
	byteAt[len(runes)] = off
	var spans [][2]int
	m, err := re.FindRunesMatch(runes)
	for ; m != nil && err == nil; m, err = re.FindNextMatch(m) {
		spans = append(spans, [2]int{byteAt[m.Index], byteAt[m.Index+m.Length]})
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "match timeout") { // regexp2's message quotes the whole input
			return nil, fmt.Errorf("regex %q: no match decided within %v on a %d-character input (catastrophic backtracking: "+
				"the tokenizer.json pattern is pathological)", re.String(), re.MatchTimeout, len(runes))
		}
		return nil, fmt.Errorf("regex %q: %w", re.String(), err)
	}
	return spans, nil
}

func (p pattern) replaceAll(n normString, content string) (normString, error) {
	spans, err := p.findAll(n.s)
	if err != nil {
		return n, err
	}
	return n.replaceSpans(spans, content), nil
}

func (p pattern) replaceString(s, content string) (string, error) {
	if p.re == nil {
		if p.literal == "" {
			return s, nil
		}
		return strings.ReplaceAll(s, p.literal, content), nil
	}
	spans, err := regexSpans(p.re, s)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	prev := 0
	for _, sp := range spans {
		sb.WriteString(s[prev:sp[0]])
		sb.WriteString(content)
		prev = sp[1]
	}
	sb.WriteString(s[prev:])
	return sb.String(), nil
}
