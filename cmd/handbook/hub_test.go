package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/hub/hubtest"
)

// push runs `handbook push` and fails the test unless it succeeds.
func push(t *testing.T, dir, repo string, extra ...string) string {
	code, stdout, stderr := runCLI(t, append([]string{"push", "--model", dir, "--repo", repo}, extra...)...)
	require.Equal(t, 0, code, stderr)
	return stdout
}

// Every command that takes a model, adapter or tokenizer directory takes a Hub repository id
// (and --revision) too, and answers as it does for the local directory.
func TestCommandsTakeHubIDs(t *testing.T) {
	s := hubtest.Start(t, "alice", "hf_alice")
	out := push(t, fixture, "llama", "--revision", "v2", "--private")
	entries, err := os.ReadDir(fixture)
	require.NoError(t, err)
	assert.Contains(t, out, fmt.Sprintf("pushed %d files", len(entries)))
	assert.Contains(t, out, "alice/llama")
	assert.True(t, s.Private("alice/llama"))
	assert.Contains(t, push(t, fixture, "llama", "--revision", "v2"), "is up to date", "a second push sends nothing")
	push(t, adapterFixture, "alice/adapter")
	push(t, qwen3Dir(t), "qwen3-tokenizer")

	same := func(local, hub []string) {
		t.Helper()
		code, want, stderr := runCLI(t, local...)
		require.Equal(t, 0, code, stderr)
		code, got, stderr := runCLI(t, hub...)
		require.Equal(t, 0, code, stderr)
		assert.Equal(t, lastLine(want), lastLine(got), "%v", hub)
	}
	gen := []string{"generate", "--prompt_ids", "5,6,7", "--max_new_tokens", "4", "--json"}
	same(append(gen, "--model", fixture, "--adapter", adapterFixture), append(gen, "--model", "alice/llama", "--revision", "v2", "--adapter", "alice/adapter"))
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	require.NoError(t, os.WriteFile(tokens, []byte("[[5,6,7,8,9]]"), 0o644))
	same([]string{"eval", "--tokens", tokens, "--json", "--model", fixture}, []string{"eval", "--tokens", tokens, "--json", "--model", "alice/llama", "--revision", "v2"})
	same([]string{"tokenize", "--text", "Hello, Hub!", "--json", "--tokenizer", qwen3Dir(t)},
		[]string{"tokenize", "--text", "Hello, Hub!", "--json", "--tokenizer", "alice/qwen3-tokenizer"})
	messages := filepath.Join(t.TempDir(), "m.json")
	require.NoError(t, os.WriteFile(messages, []byte(`[{"role":"user","content":"hi"}]`), 0o644))
	same([]string{"template", "--messages", messages, "--json", "--tokenizer", qwen3Dir(t)},
		[]string{"template", "--messages", messages, "--json", "--tokenizer", "alice/qwen3-tokenizer"})

	merged := filepath.Join(t.TempDir(), "merged")
	code, stdout, stderr := runCLI(t, "merge", "--model", "alice/llama", "--revision", "v2", "--adapter", "alice/adapter", "--out", merged)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "merged 8 adapted modules")

	code, _, stderr = runCLI(t, "generate", "--model", "alice/llama", "--prompt_ids", "5", "--json")
	assert.Equal(t, 1, code, "main has no model: it was pushed to v2")
	assert.Contains(t, stderr, "models--alice--llama")
	assert.Contains(t, stderr, "config.json")
	code, _, stderr = runCLI(t, "push", "--model", fixture)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "--model and --repo are required")
}
