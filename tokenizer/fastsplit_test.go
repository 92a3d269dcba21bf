package tokenizer

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dlclark/regexp2"
	"github.com/stretchr/testify/require"
)

// TestFastSplitMatchesRegexp2 compares the hand-written Llama-3/Qwen matcher with
// regexp2 running the same regex on random strings over the characters where the
// alternatives interact. (Exactness against HF itself is the goldens' job; regexp2
// differs from Oniguruma on 'ſ, which the goldens cover.)
func TestFastSplitMatchesRegexp2(t *testing.T) {
	alphabet := []string{"a", "Z", "é", "日", "0", "9", "١", "²", "①", " ", "  ", "\t", "\n", "\r", "\r\n", "\v",
		"\u00a0", "\u3000", "\u2028", "\u0085", "'", "'s", "'S", "'re", "'LL", "'ve", "'d", "'m", "'t", "'x", "!", ".",
		",", "-", "_", "<", "|", ">", "🤗", "\u0301", "\u200b", "\x00", "\U00018dd3", "\U00011de0", "\xff", "ſ"}
	rng := rand.New(rand.NewPCG(1, 2))
	for regex, digits := range fastSplitters {
		re := regexp2.MustCompile(regex, regexp2.None)
		for range 20000 {
			var sb strings.Builder
			for range 1 + rng.IntN(20) {
				sb.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			s := sb.String()
			if strings.Contains(s, "'ſ") {
				continue
			}
			want, err := regexSpans(re, s)
			require.NoError(t, err)
			require.Equal(t, want, fastSplitSpans(s, digits), "digits=%d %q", digits, s)
		}
	}
	require.Equal(t, [][2]int{{0, 3}, {3, 4}}, fastSplitSpans("'ſa", 3), "Oniguruma folds ſ to s")
}
