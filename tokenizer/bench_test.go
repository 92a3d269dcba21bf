package tokenizer

import (
	"encoding/json"
	"fmt"
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

// BenchmarkRenderChatTemplate renders Qwen3's template for an 8-turn and a 2000-turn conversation,
// guarded (the sandbox) and with the plain jinja library; both build the template variables.
func BenchmarkRenderChatTemplate(b *testing.B) {
	tmpl, err := loadFixture(b, "qwen3").ChatTemplate("")
	require.NoError(b, err)
	plain, err := jinja.Compile(tmpl.Source)
	require.NoError(b, err)
	opts := RenderOptions{AddGenerationPrompt: true}
	for _, turns := range []int{8, 2000} {
		msgs := longConversation(turns)
		b.Run(fmt.Sprintf("turns=%d/sandboxed", turns), func(b *testing.B) {
			for b.Loop() {
				if _, err := tmpl.Render(msgs, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("turns=%d/plain", turns), func(b *testing.B) {
			for b.Loop() {
				vars, err := tmpl.vars(msgs, opts)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := plain.RenderValues(vars); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
