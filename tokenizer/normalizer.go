package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// normalizer is one tokenizer.json "normalizer" component.
type normalizer func(normString) (normString, error)

func parseNormalizer(raw json.RawMessage, rx *regexes) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var head struct {
		Type        string
		Normalizers []json.RawMessage
		Prepend     string
		Content     string
		Pattern     json.RawMessage
		Left        bool `json:"strip_left"`
		Right       bool `json:"strip_right"`
		// BertNormalizer options.
		CleanText          bool  `json:"clean_text"`
		HandleChineseChars bool  `json:"handle_chinese_chars"`
		StripAccents       *bool `json:"strip_accents"`
		Lowercase          bool
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	switch head.Type {
	case "Sequence":
		var steps []normalizer
		for i, r := range head.Normalizers {
			n, err := parseNormalizer(r, rx)
			if err != nil {
				return nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			if n != nil {
				steps = append(steps, n)
			}
		}
		return func(n normString) (normString, error) {
			for _, step := range steps {
				var err error
				if n, err = step(n); err != nil {
					return n, err
				}
			}
			return n, nil
		}, nil
	case "NFC":
		return unicodeNormalizer(norm.NFC), nil
	case "NFD":
		return unicodeNormalizer(norm.NFD), nil
	case "NFKC":
		return unicodeNormalizer(norm.NFKC), nil
	case "NFKD":
		return unicodeNormalizer(norm.NFKD), nil
	case "Lowercase":
		return func(n normString) (normString, error) { return n.mapRunes(lowercase), nil }, nil
	case "StripAccents":
		return func(n normString) (normString, error) { return n.mapRunes(dropMarks(unicode.M)), nil }, nil
	case "Strip":
		return func(n normString) (normString, error) { return strip(n, head.Left, head.Right), nil }, nil
	case "Prepend":
		return func(n normString) (normString, error) { return n.prepend(head.Prepend), nil }, nil
	case "Replace":
		p, err := parsePattern(head.Pattern, rx)
		if err != nil {
			return nil, fmt.Errorf("Replace: %w", err)
		}
		return func(n normString) (normString, error) {
			out, err := p.replaceAll(n, head.Content)
			if err != nil {
				return n, fmt.Errorf("normalizer Replace: %w", err)
			}
			return out, nil
		}, nil
	case "BertNormalizer":
		stripAccents := head.Lowercase
		if head.StripAccents != nil {
			stripAccents = *head.StripAccents
		}
		return bertNormalizer(head.CleanText, head.HandleChineseChars, stripAccents, head.Lowercase), nil
	}
	return nil, fmt.Errorf("normalizer: unsupported type %q", head.Type)
}

func unicodeNormalizer(form norm.Form) normalizer {
	return func(n normString) (normString, error) { return n.unicodeForm(form), nil }
}

// lowercase follows Rust's char::to_lowercase, which expands 'İ' unlike Go's unicode.ToLower.
func lowercase(r rune) string {
	if r == 'İ' {
		return "i\u0307"
	}
	return string(unicode.ToLower(r))
}

// dropMarks removes combining marks: HF's StripAccents drops every mark, while
// BertNormalizer drops only non-spacing ones (Mn).
func dropMarks(marks *unicode.RangeTable) func(rune) string {
	return func(r rune) string {
		if unicode.Is(marks, r) {
			return ""
		}
		return string(r)
	}
}

func strip(n normString, left, right bool) normString {
	s := n.s
	a, b := 0, len(s)
	if left {
		a = len(s) - len(strings.TrimLeftFunc(s, unicode.IsSpace))
	}
	if right {
		b = len(strings.TrimRightFunc(s[a:], unicode.IsSpace)) + a
	}
	return n.slice(a, b)
}

func bertNormalizer(cleanText, chinese, stripAccents, lower bool) normalizer {
	return func(n normString) (normString, error) {
		if cleanText {
			n = n.mapRunes(func(r rune) string {
				switch {
				case r == 0 || r == 0xFFFD || isBertControl(r):
					return ""
				case r == '\t' || r == '\n' || r == '\r' || unicode.IsSpace(r):
					return " "
				}
				return string(r)
			})
		}
		if chinese {
			n = n.mapRunes(func(r rune) string {
				if isCJK(r) {
					return " " + string(r) + " "
				}
				return string(r)
			})
		}
		if stripAccents {
			n = n.unicodeForm(norm.NFD).mapRunes(dropMarks(unicode.Mn))
		}
		if lower {
			n = n.mapRunes(lowercase)
		}
		return n, nil
	}
}

func isBertControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs) || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C)
}

func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) || (r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) || (r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B920 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}
