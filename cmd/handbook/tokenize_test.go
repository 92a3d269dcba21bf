package main

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const tokenizerFixtures = "../../tokenizer/testdata/qwen3"

// qwen3Dir unpacks the committed Qwen3 tokenizer into a directory the CLI can load.
func qwen3Dir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	gz, err := os.Open(filepath.Join(tokenizerFixtures, "tokenizer.json.gz"))
	require.NoError(t, err)
	defer gz.Close()
	r, err := gzip.NewReader(gz)
	require.NoError(t, err)
	data, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer.json"), data, 0o644))
	cfg, err := os.ReadFile(filepath.Join(tokenizerFixtures, "tokenizer_config.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644))
	return dir
}

func readGzipJSON(t *testing.T, path string, v any) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	r, err := gzip.NewReader(f)
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(r).Decode(v))
}

func TestTokenizeMatchesGoldens(t *testing.T) {
	dir := qwen3Dir(t)
	var golden struct {
		Cases []struct {
			Text       string `json:"text"`
			IDs        []int  `json:"ids"`
			IDsSpecial []int  `json:"ids_special"`
			Decoded    string `json:"decoded"`
		} `json:"cases"`
	}
	readGzipJSON(t, filepath.Join(tokenizerFixtures, "encode_goldens.json.gz"), &golden)
	require.Greater(t, len(golden.Cases), 8)
	for _, c := range golden.Cases[:8] {
		if c.Text == "" || strings.HasPrefix(c.Text, "-") {
			continue
		}
		code, stdout, stderr := runCLI(t, "tokenize", "--tokenizer", dir, "--text", c.Text, "--add_special_tokens", "--json")
		require.Equal(t, 0, code, stderr)
		var enc struct {
			IDs []int `json:"ids"`
		}
		require.NoError(t, json.Unmarshal([]byte(lastLine(stdout)), &enc))
		assert.Equal(t, c.IDsSpecial, enc.IDs, "%q", c.Text)

		ids := make([]string, len(c.IDs))
		for i, id := range c.IDs {
			ids[i] = strings.TrimSpace(string(must(json.Marshal(id))))
		}
		if len(ids) == 0 {
			continue
		}
		code, stdout, stderr = runCLI(t, "tokenize", "--tokenizer", dir, "--decode", strings.Join(ids, ","), "--json")
		require.Equal(t, 0, code, stderr)
		var dec struct {
			Text string `json:"text"`
		}
		require.NoError(t, json.Unmarshal([]byte(lastLine(stdout)), &dec))
		assert.Equal(t, c.Decoded, dec.Text)
	}
}

func TestTemplateMatchesGoldens(t *testing.T) {
	dir := qwen3Dir(t)
	var golden struct {
		Templates []struct {
			TemplateName string `json:"template_name"`
			Cases        []struct {
				Messages            json.RawMessage `json:"messages"`
				Tools               json.RawMessage `json:"tools"`
				AddGenerationPrompt bool            `json:"add_generation_prompt"`
				Kwargs              map[string]any  `json:"kwargs"`
				Text                string          `json:"text"`
			} `json:"cases"`
		} `json:"templates"`
	}
	readGzipJSON(t, filepath.Join(tokenizerFixtures, "chat_goldens.json.gz"), &golden)
	checked := 0
	for _, tmpl := range golden.Templates {
		if tmpl.TemplateName != "native" {
			continue
		}
		for i, c := range tmpl.Cases {
			if i%4 != 0 { // every 4th case keeps the CLI test quick; the tokenizer package checks them all
				continue
			}
			obj := map[string]any{"messages": c.Messages, "add_generation_prompt": c.AddGenerationPrompt}
			if c.Tools != nil {
				obj["tools"] = c.Tools
			}
			for k, v := range c.Kwargs {
				obj[k] = v
			}
			file := filepath.Join(t.TempDir(), "messages.json")
			require.NoError(t, os.WriteFile(file, must(json.Marshal(obj)), 0o644))
			code, stdout, stderr := runCLI(t, "template", "--tokenizer", dir, "--messages", file, "--json")
			require.Equal(t, 0, code, stderr)
			var out struct {
				Text string `json:"text"`
			}
			require.NoError(t, json.Unmarshal([]byte(lastLine(stdout)), &out))
			assert.Equal(t, c.Text, out.Text, "case %d", i)
			checked++
		}
	}
	assert.GreaterOrEqual(t, checked, 7)
}

func TestTokenizeErrors(t *testing.T) {
	dir := qwen3Dir(t)
	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"tools": []}`), 0o644))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no tokenizer", []string{"tokenize", "--text", "hi"}, "--tokenizer is required"},
		{"two inputs", []string{"tokenize", "--tokenizer", dir, "--text", "hi", "--decode", "1"}, "exactly one of --text, --file and --decode"},
		{"id out of range", []string{"tokenize", "--tokenizer", dir, "--decode", "99999999"}, "outside the vocabulary"},
		{"missing tokenizer.json", []string{"tokenize", "--tokenizer", t.TempDir(), "--text", "hi"}, "tokenizer.json"},
		{"messages object without messages", []string{"template", "--tokenizer", dir, "--messages", bad}, `no "messages" key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			assert.NotEqual(t, 0, code)
			assert.Contains(t, stderr, tc.want)
		})
	}
}
