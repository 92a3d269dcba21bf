package tokenizer

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// decoder is one tokenizer.json "decoder": it rewrites the token strings, and the
// decoded text is their concatenation.
type decoder func(tokens []string) ([]string, error)

func parseDecoder(raw json.RawMessage, rx *regexes) (decoder, error) {
	if isNull(raw) {
		return nil, nil
	}
	var head struct {
		Type          string
		Decoders      []json.RawMessage
		Pattern       json.RawMessage
		Content       string
		Start, Stop   int
		Replacement   string
		PrependScheme *string `json:"prepend_scheme"`
		AddPrefix     *bool   `json:"add_prefix_space"`
		Prefix        string
		Suffix        string
		Cleanup       *bool
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	switch head.Type {
	case "Sequence":
		var steps []decoder
		for i, r := range head.Decoders {
			d, err := parseDecoder(r, rx)
			if err != nil {
				return nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			if d != nil {
				steps = append(steps, d)
			}
		}
		return func(tokens []string) ([]string, error) {
			for _, step := range steps {
				var err error
				if tokens, err = step(tokens); err != nil {
					return nil, err
				}
			}
			return tokens, nil
		}, nil
	case "ByteLevel":
		return decodeByteLevel, nil
	case "ByteFallback":
		return decodeByteFallback, nil
	case "Fuse":
		return func(tokens []string) ([]string, error) { return []string{strings.Join(tokens, "")}, nil }, nil
	case "Strip":
		content, _ := utf8.DecodeRuneInString(head.Content)
		return func(tokens []string) ([]string, error) {
			for i, t := range tokens {
				tokens[i] = stripRunes(t, content, head.Start, head.Stop)
			}
			return tokens, nil
		}, nil
	case "Replace":
		p, err := parsePattern(head.Pattern, rx)
		if err != nil {
			return nil, fmt.Errorf("decoder Replace: %w", err)
		}
		return func(tokens []string) ([]string, error) {
			for i, t := range tokens {
				var err error
				if tokens[i], err = p.replaceString(t, head.Content); err != nil {
					return nil, fmt.Errorf("decoder Replace: %w", err)
				}
			}
			return tokens, nil
		}, nil
	case "Metaspace":
		replacement := head.Replacement
		if replacement == "" {
			replacement = "▁"
		}
		stripFirst := head.PrependScheme == nil || *head.PrependScheme != "never"
		if head.PrependScheme == nil && head.AddPrefix != nil {
			stripFirst = *head.AddPrefix
		}
		return func(tokens []string) ([]string, error) {
			for i, t := range tokens {
				t = strings.ReplaceAll(t, replacement, " ")
				if i == 0 && stripFirst {
					t = strings.TrimPrefix(t, " ")
				}
				tokens[i] = t
			}
			return tokens, nil
		}, nil
	case "WordPiece":
		prefix := head.Prefix
		if prefix == "" {
			prefix = "##"
		}
		cleanup := head.Cleanup == nil || *head.Cleanup
		return func(tokens []string) ([]string, error) {
			for i, t := range tokens {
				if i > 0 {
					if strings.HasPrefix(t, prefix) {
						t = strings.Replace(t, prefix, "", 1)
					} else {
						t = " " + t
					}
				}
				if cleanup {
					t = cleanupSpaces(t)
				}
				tokens[i] = t
			}
			return tokens, nil
		}, nil
	case "BPEDecoder":
		suffix := head.Suffix
		if suffix == "" {
			suffix = "</w>"
		}
		return func(tokens []string) ([]string, error) {
			for i, t := range tokens {
				sep := " "
				if i == len(tokens)-1 {
					sep = ""
				}
				tokens[i] = strings.ReplaceAll(t, suffix, sep)
			}
			return tokens, nil
		}, nil
	}
	return nil, fmt.Errorf("decoder: unsupported type %q", head.Type)
}

// cleanupSpaces is HF's clean_up_tokenization.
func cleanupSpaces(s string) string {
	return strings.NewReplacer(" .", ".", " ?", "?", " !", "!", " ,", ",", " ' ", "'", " n't", "n't",
		" 'm", "'m", " 's", "'s", " 've", "'ve", " 're", "'re").Replace(s)
}

// stripRunes removes up to left leading and right trailing copies of c.
func stripRunes(s string, c rune, left, right int) string {
	runes := []rune(s)
	a, b := 0, len(runes)
	for a < left && a < b && runes[a] == c {
		a++
	}
	for k := 0; k < right && b > a && runes[b-1] == c; k++ {
		b--
	}
	return string(runes[a:b])
}

func decodeByteLevel(tokens []string) ([]string, error) {
	var buf []byte
	for _, t := range tokens {
		mark := len(buf)
		for _, r := range t {
			b, ok := runeToByte[r]
			if !ok {
				buf = append(buf[:mark], t...)
				break
			}
			buf = append(buf, b)
		}
	}
	return []string{lossyUTF8(buf)}, nil
}

func decodeByteFallback(tokens []string) ([]string, error) {
	out := make([]string, 0, len(tokens))
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, t := range tokens {
		if len(t) == 6 && strings.HasPrefix(t, "<0x") && t[5] == '>' {
			if b, err := strconv.ParseUint(t[3:5], 16, 8); err == nil {
				pending = append(pending, byte(b))
				continue
			}
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out, nil
}

// lossyUTF8 is Rust's String::from_utf8_lossy: each maximal invalid subpart
// becomes one U+FFFD (Go's strings.ToValidUTF8 would merge whole invalid runs).
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r != utf8.RuneError || size > 1 {
			sb.Write(b[:size])
			b = b[size:]
			continue
		}
		sb.WriteRune(utf8.RuneError)
		b = b[invalidPrefixLen(b):]
	}
	return sb.String()
}

// invalidPrefixLen is the length of the maximal prefix of b that starts a valid
// sequence but is cut short (at least 1).
func invalidPrefixLen(b []byte) int {
	lo, hi := byte(0x80), byte(0xBF)
	var need int
	switch c := b[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		c := b[n]
		if k == 0 && (c < lo || c > hi) || k > 0 && (c < 0x80 || c > 0xBF) {
			break
		}
		n++
	}
	return n
}
