package main

import (
	"bufio"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type previewJSON struct {
	TrainRows int `json:"train_rows"`
	TestRows  int `json:"test_rows"`
	Sources   []struct {
		ID    string `json:"id"`
		Split string `json:"split"`
		Rows  int    `json:"rows"`
	} `json:"sources"`
	Examples []struct {
		Origin   string `json:"origin"`
		Segments []struct {
			Text    string `json:"text"`
			Trained bool   `json:"trained"`
		} `json:"segments"`
		Prompt, Chosen, Rejected string
	} `json:"examples"`
}

// jsonlRow reads row i of a JSONL file named by an origin "path: row i".
func jsonlRow(t *testing.T, origin string) map[string]any {
	path, row, ok := strings.Cut(origin, ": row ")
	require.True(t, ok, origin)
	i, err := strconv.Atoi(row)
	require.NoError(t, err)
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan(); n++ {
		if n == i {
			var v map[string]any
			require.NoError(t, json.Unmarshal(sc.Bytes(), &v))
			return v
		}
	}
	t.Fatalf("%s has no row %d", path, i)
	return nil
}

// lastContent is the content of the last message of a conversation column.
func lastContent(row map[string]any, column string) string {
	msgs := row[column].([]any)
	return msgs[len(msgs)-1].(map[string]any)["content"].(string)
}

// TestDataPreviewSFT checks the preview against the data files: the mixture sizes and, for each
// shown example, that exactly the assistant's answer (and its end-of-turn token) is trained.
func TestDataPreviewSFT(t *testing.T) {
	t.Chdir("../..")
	code, stdout, stderr := runCLI(t, "data", "recipes/tiny/sft/config_full.yaml", "--show", "3", "--json")
	require.Equal(t, 0, code, stderr)
	var p previewJSON
	require.NoError(t, json.Unmarshal([]byte(lastLine(stdout)), &p))
	lines := strings.Count(string(must(os.ReadFile("recipes/tiny/data/sft/train.jsonl"))), "\n")
	assert.Equal(t, lines-200, p.TrainRows, "test_split_size: 200 comes out of the train split")
	assert.Equal(t, 200, p.TestRows)
	require.Len(t, p.Sources, 1)
	assert.Equal(t, lines, p.Sources[0].Rows)
	require.Len(t, p.Examples, 3)
	for _, e := range p.Examples {
		var trained []string
		for _, s := range e.Segments {
			if s.Trained {
				trained = append(trained, s.Text)
			}
		}
		assert.Equal(t, []string{lastContent(jsonlRow(t, e.Origin), "messages") + "<|im_end|>\n"}, trained, e.Origin)
	}

	code, stdout, _ = runCLI(t, "data", "recipes/tiny/sft/config_full.yaml", "--show=1")
	require.Equal(t, 0, code)
	assert.Contains(t, stdout, "⟦"+lastContent(jsonlRow(t, p.Examples[0].Origin), "messages")+"<|im_end|>\n⟧")
}

func TestDataPreviewPreference(t *testing.T) {
	t.Chdir("../..")
	code, stdout, stderr := runCLI(t, "data", "recipes/tiny/dpo/config_full.yaml", "--show", "2", "--json")
	require.Equal(t, 0, code, stderr)
	var p previewJSON
	require.NoError(t, json.Unmarshal([]byte(lastLine(stdout)), &p))
	require.Len(t, p.Examples, 2)
	for _, e := range p.Examples {
		row := jsonlRow(t, e.Origin)
		assert.True(t, strings.HasSuffix(e.Prompt, "<|im_start|>assistant\n"), e.Prompt)
		assert.True(t, strings.HasPrefix(e.Chosen, lastContent(row, "chosen")+"<|im_end|>"), e.Chosen)
		assert.True(t, strings.HasPrefix(e.Rejected, lastContent(row, "rejected")+"<|im_end|>"), e.Rejected)
	}
}

func TestDataPreviewErrors(t *testing.T) {
	t.Chdir("../..")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--show=-1"}, "--show"},
		{[]string{"--task=ppo"}, "--task"},
		{[]string{"--show"}, "--show needs a value"},
		{[]string{"--learning_rat=1"}, "learning_rat"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := runCLI(t, append([]string{"data", "recipes/tiny/sft/config_full.yaml"}, tc.args...)...)
			assert.NotEqual(t, 0, code)
			assert.Contains(t, stderr, tc.want)
		})
	}
}
