package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ardanlabs/jinja"
	"github.com/stretchr/testify/require"
)

// longWord is a 14 KB text without spaces: one pre-token for byte-level BPE and
// one BPE word for Mistral, the case where quadratic merging hurts.
var longWord = strings.Repeat("alignmenthandbooktokenizer", 540)

func BenchmarkEncodeLongWord(b *testing.B) {
	for _, name := range []string{"qwen3", "mistral"} {
		tok := loadFixture(b, name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(longWord)))
			for b.Loop() {
				// A fresh word each time would be fairer to the cache, but words
				// this long are never cached.
				if _, err := tok.Encode(longWord, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeCorpus(b *testing.B) {
	var corpus []string
	require.NoError(b, json.Unmarshal(readGz(b, filepath.Join("testdata", "corpus.json.gz")), &corpus))
	size := 0
	for _, s := range corpus {
		size += len(s)
	}
	names := []string{"qwen3", "mistral"}
	if os.Getenv(npmTokenizersEnv) != "" {
		names = append(names, npmFixtures...)
	}
	for _, name := range names {
		var tok *Tokenizer
		if slices.Contains(npmFixtures, name) {
			tok = loadNPMFixture(b, name)
		} else {
			tok = loadFixture(b, name)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				for _, s := range corpus {
					if _, err := tok.Encode(s, false); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func TestLongWordIsNotQuadratic(t *testing.T) {
	tok := loadFixture(t, "mistral")
	ids, err := tok.Encode(longWord, false)
	require.NoError(t, err)
	require.True(t, longWord == tok.Decode(ids, false), "decode(encode(x)) != x for the 14 KB word")
}

// BenchmarkRenderChatTemplate renders Qwen3's template for a 8-turn
// conversation guarded (the sandbox) and with the plain jinja library.
func BenchmarkRenderChatTemplate(b *testing.B) {
	tmpl, err := loadFixture(b, "qwen3").ChatTemplate("")
	require.NoError(b, err)
	msgs := longConversation(8)
	b.Run("sandboxed", func(b *testing.B) {
		for b.Loop() {
			if _, err := tmpl.Render(msgs, RenderOptions{AddGenerationPrompt: true}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain", func(b *testing.B) {
		plain, err := jinja.Compile(tmpl.Source)
		require.NoError(b, err)
		for b.Loop() {
			vars, err := tmpl.vars(msgs, RenderOptions{AddGenerationPrompt: true})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := plain.RenderValues(vars); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRenderLongConversation(b *testing.B) {
	tmpl, err := loadFixture(b, "qwen3").ChatTemplate("")
	require.NoError(b, err)
	msgs := longConversation(2000)
	b.Run("sandboxed", func(b *testing.B) {
		for b.Loop() {
			if _, err := tmpl.Render(msgs, RenderOptions{AddGenerationPrompt: true}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain", func(b *testing.B) {
		plain, err := jinja.Compile(tmpl.Source)
		require.NoError(b, err)
		for b.Loop() {
			vars, err := tmpl.vars(msgs, RenderOptions{AddGenerationPrompt: true})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := plain.RenderValues(vars); err != nil {
				b.Fatal(err)
			}
		}
	})
}
