package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/stretchr/testify/require"
)

func TestBadTokenizerJSON(t *testing.T) {
	tests := []struct {
		name, json, wantErr string
	}{
		{"malformed", `{"model": `, "tokenizer.json"},
		{"unknown model", `{"model": {"type": "Fancy"}}`, `model: unsupported type "Fancy"`},
		{"unknown normalizer", `{"normalizer": {"type": "Magic"}, "model": {"type": "BPE", "vocab": {}, "merges": []}}`, `normalizer: unsupported type "Magic"`},
		{"unknown pre_tokenizer", `{"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Nope"}]}, "model": {"type": "BPE", "vocab": {}, "merges": []}}`, `Sequence[0]: pre_tokenizer: unsupported type "Nope"`},
		{"bad regex", `{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"}, "model": {"type": "BPE", "vocab": {}, "merges": []}}`, "Split: pattern regex"},
		{"merge not in vocab", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}`, "merges[0]"},
		{"unknown decoder", `{"decoder": {"type": "X"}, "model": {"type": "BPE", "vocab": {}, "merges": []}}`, `decoder: unsupported type "X"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New([]byte(tc.json), nil)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestLoadNamesTheDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	require.ErrorContains(t, err, "tokenizer.json")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(`{"model": {"type": "BPE", "vocab": {}, "merges": []}}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"chat_template": 3}`), 0o644))
	_, err = Load(dir)
	require.ErrorContains(t, err, dir)
	require.ErrorContains(t, err, "tokenizer_config.json: chat_template")
}

func TestSpecialTokensFromConfig(t *testing.T) {
	tests := []struct {
		fixture       string
		bos, eos, unk SpecialToken
		addBOS        bool
	}{
		{"mistral", SpecialToken{"<s>", 1}, SpecialToken{"</s>", 2}, SpecialToken{"<unk>", 0}, true},
		{"qwen3", SpecialToken{"", -1}, SpecialToken{"<|im_end|>", 151645}, SpecialToken{"", -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			tok := loadFixture(t, tc.fixture)
			require.Equal(t, tc.bos, tok.BOS)
			require.Equal(t, tc.eos, tok.EOS)
			require.Equal(t, tc.unk, tok.UNK)
			require.Equal(t, tc.addBOS, tok.AddBOS)
		})
	}
}

func TestVocabAndBatch(t *testing.T) {
	tok := loadFixture(t, "qwen3")
	require.Equal(t, 151669, tok.VocabSize())
	id, ok := tok.TokenToID("<|im_start|>")
	require.True(t, ok)
	s, ok := tok.IDToToken(id)
	require.True(t, ok)
	require.Equal(t, "<|im_start|>", s)
	texts := []string{"a", "1234567", "你好", ""}
	batch, err := tok.EncodeBatch(texts, false)
	require.NoError(t, err)
	for i, text := range texts {
		one, err := tok.Encode(text, false)
		require.NoError(t, err)
		require.Equal(t, one, batch[i])
	}
}

func FuzzParseTokenizerJSON(f *testing.F) {
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}`))
	f.Add([]byte(`{"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]}, "model": {"type": "Unigram", "vocab": [["a", -1.0]], "unk_id": 0}}`))
	f.Add([]byte(`{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := New(data, nil)
		if err != nil {
			return
		}
		if ids, err := tok.Encode("ab a\u00e9 1234", true); err == nil {
			tok.Decode(ids, false)
		}
	})
}

// FuzzByteLevelRoundTrip checks decode(encode(x)) == x for a byte-level model.
func FuzzByteLevelRoundTrip(f *testing.F) {
	tok := loadFixture(f, "qwen3")
	for _, s := range []string{"", "Hello world", "1234567", "你好😀", "  \n\t", "<|im_start|>x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := tok.Encode(s, false)
		require.NoError(t, err)
		want := s
		if !validUTF8(s) {
			want = lossyUTF8([]byte(s))
		}
		if normalizedNFC(want) == want {
			require.Equal(t, want, tok.Decode(ids, false))
		}
	})
}

func validUTF8(s string) bool { return lossyUTF8([]byte(s)) == s }

func normalizedNFC(s string) string {
	n := newNormString(s, 0).unicodeForm(norm.NFC)
	return n.s
}

// TestPathologicalRegexesFailWithinTheTimeout puts each class of catastrophic
// backtracking pattern where tokenizer.json may hold a regex (Split
// pre-tokenizer, Replace normalizer, Replace decoder): encoding or decoding a
// short hostile input is an error naming the pattern, not a hang.
func TestPathologicalRegexesFailWithinTheTimeout(t *testing.T) {
	hostile := strings.Repeat("a", 40) + "!"
	vocab := `"model": {"type": "WordPiece", "vocab": {"a": 0, "!": 1, "[UNK]": 2, "` + hostile + `": 3}, "unk_token": "[UNK]"}`
	patterns := map[string]string{
		"nested quantifiers":      `(a+)+$`,
		"overlapping alternation": `(a|aa)+$`,
		"repeated lookahead":      `((?=a)a|a)+$`,
		"backreference":           `^(a*)*\\1$`,
	}
	for class, re := range patterns {
		for _, place := range []struct{ name, json string }{
			{"pre_tokenizer Split", `{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "` + re + `"}, "behavior": "Isolated"}, ` + vocab + `}`},
			{"normalizer Replace", `{"normalizer": {"type": "Replace", "pattern": {"Regex": "` + re + `"}, "content": "x"}, ` + vocab + `}`},
			{"decoder Replace", `{"decoder": {"type": "Replace", "pattern": {"Regex": "` + re + `"}, "content": "x"}, ` + vocab + `}`},
		} {
			t.Run(class+"/"+place.name, func(t *testing.T) {
				tok, err := New([]byte(place.json), nil)
				require.NoError(t, err)
				tok.SetRegexTimeout(50 * time.Millisecond)
				start := time.Now()
				if place.name == "decoder Replace" {
					_, err = tok.DecodeChecked([]int{3}, false)
				} else {
					_, err = tok.Encode(hostile, false)
				}
				t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
				require.Error(t, err)
				require.ErrorContains(t, err, place.name)
				require.ErrorContains(t, err, fmt.Sprintf("%q", strings.ReplaceAll(re, `\\`, `\`)))
				require.ErrorContains(t, err, "catastrophic backtracking")
			})
		}
	}
}

// TestRegexTimeoutDefault checks a freshly loaded tokenizer already has the
// default timeout: the (a+)+$ on 28 a's took 33 s without one.
func TestRegexTimeoutDefault(t *testing.T) {
	tok, err := New([]byte(`{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated"}, `+
		`"model": {"type": "WordPiece", "vocab": {"a": 0}, "unk_token": "a"}}`), nil)
	require.NoError(t, err)
	_, err = tok.Encode(strings.Repeat("a", 60)+"!", false)
	require.ErrorContains(t, err, "within "+DefaultRegexTimeout.String())
}
