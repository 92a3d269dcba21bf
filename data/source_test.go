package data

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func scanAll(t *testing.T, src Source) []Row {
	t.Helper()
	var rows []Row
	require.NoError(t, src.Scan(context.Background(), func(i int, r Row) error {
		require.Equal(t, len(rows), i)
		rows = append(rows, r)
		return nil
	}))
	n, err := src.Len(context.Background())
	require.NoError(t, err)
	require.Equal(t, len(rows), n)
	return rows
}

func TestHubLayouts(t *testing.T) {
	hub := filepath.Join("testdata", "hub")
	tests := []struct {
		id, config, split string
		rows              int
		firstCols         []string
	}{
		{"ultrachat", "", "train_sft", 20, []string{"messages", "prompt", "prompt_id"}},      // two shards, row groups of 4
		{"ultrachat", "default", "test_sft", 6, []string{"messages", "prompt", "prompt_id"}}, // "default" needs no folder
		{"ultrafeedback", "default", "train_prefs", 7, []string{"chosen", "prompt", "rejected", "score_chosen"}},
		{"smoltalk", "SFT", "everyday_no_think", 5, []string{"chat_template_kwargs", "messages"}}, // config subfolder
		{"smoltalk", "Mid", "everyday_no_think", 2, []string{"chat_template_kwargs", "messages"}},
		{"converted", "default", "train", 3, []string{"messages", "prompt", "prompt_id"}}, // {config}/{split}/0000.parquet
	}
	for _, tc := range tests {
		t.Run(tc.id+"/"+tc.config+"/"+tc.split, func(t *testing.T) {
			src, err := LocalLoader{Root: hub}.Open(context.Background(), DatasetRef{ID: tc.id, Config: tc.config, Split: tc.split})
			require.NoError(t, err)
			rows := scanAll(t, src)
			require.Len(t, rows, tc.rows)
			assert.Equal(t, tc.firstCols, sortedKeys(rows[0]))
		})
	}
	_, err := LocalLoader{Root: hub}.Open(context.Background(), DatasetRef{ID: "smoltalk", Config: "RL", Split: "x"})
	require.ErrorContains(t, err, `no folder for config "RL"`)
}

func TestParquetNestedMessages(t *testing.T) {
	src, err := OpenDir(filepath.Join("testdata", "hub", "ultrachat"), "", "train_sft")
	require.NoError(t, err)
	rows := scanAll(t, src)
	// Struct fields keep the Parquet schema's order (content before role here), as datasets does.
	assert.JSONEq(t, `[{"content":"What is 12 + 15?","role":"user"},{"content":"27","role":"assistant"}]`, string(rows[12]["messages"]))
	assert.Equal(t, `[{"content":"What is 12 + 15?","role":"user"},{"content":"27","role":"assistant"}]`, string(rows[12]["messages"]))
	assert.Equal(t, `"id0012"`, string(rows[12]["prompt_id"]))
	ex, err := ParseRow(rows[12], FormatMessages, ParseOptions{})
	require.NoError(t, err)
	require.Len(t, ex.Messages, 2)
	assert.Equal(t, "assistant", ex.Messages[1].Role)
	assert.Equal(t, "27", ex.Messages[1].Content)

	kw, err := OpenDir(filepath.Join("testdata", "hub", "smoltalk"), "SFT", "everyday_no_think")
	require.NoError(t, err)
	ex, err = ParseRow(scanAll(t, kw)[0], FormatMessages, ParseOptions{})
	require.NoError(t, err)
	assert.Equal(t, json.RawMessage("false"), ex.TemplateKwargs["enable_thinking"])
}

func TestJSONFiles(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, body string }{
		{"records.json", `[{"text": "a", "n": 1}, {"text": "b", "n": 2}]`},
		{"columns.json", `{"text": ["a", "b"], "n": [1, 2]}`},
		{"lines.jsonl", "{\"text\": \"a\", \"n\": 1}\n\n{\"text\": \"b\", \"n\": 2}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			require.NoError(t, os.WriteFile(path, []byte(tc.body), 0o644))
			src, err := OpenFile(path)
			require.NoError(t, err)
			rows := scanAll(t, src)
			require.Len(t, rows, 2)
			assert.Equal(t, `"b"`, string(rows[1]["text"]))
			assert.Equal(t, `2`, string(rows[1]["n"]))
		})
	}
}

func TestBadSources(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join("testdata", "hub", "ultrachat", "data", "train_sft-00000-of-00002.parquet"))
	require.NoError(t, err)
	corrupt := append([]byte(nil), good...)
	for i := 40; i < 80; i++ { // scribble over the first data page
		corrupt[i] ^= 0x5A
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o644))
		return p
	}
	tests := []struct {
		name, path string
		want       []string
	}{
		{"corrupted parquet page", write("corrupt.parquet", corrupt), []string{"corrupt.parquet", "row"}},
		{"truncated parquet", write("short.parquet", good[:len(good)/3]), []string{"short.parquet", "not a readable Parquet file"}},
		{"bad json line", write("bad.jsonl", []byte("{\"text\": \"a\"}\n{\"text\": \n")), []string{"bad.jsonl: row 1 (line 2)"}},
		{"json scalar row", write("scalar.json", []byte(`[{"text": "a"}, 3]`)), []string{"scalar.json: row 1", "want a JSON object"}},
		{"ragged columns", write("ragged.json", []byte(`{"a": [1, 2], "b": [1]}`)), []string{"ragged.json", `column "b" has 1 values`}},
		{"unknown extension", filepath.Join(dir, "x.csv"), []string{"unsupported data file"}},
		// Python's json fails on bytes that are not UTF-8; decoding them as U+FFFD would train on garbage.
		{"invalid UTF-8 in a JSON line", write("latin1.jsonl", []byte("{\"text\": \"a\"}\n{\"text\": \"caf\xe9\"}\n")),
			[]string{"latin1.jsonl: row 1 (line 2)", "invalid UTF-8 at byte 13 (0xe9)"}},
		{"invalid UTF-8 in a JSON record", write("latin1.json", []byte("[{\"text\": \"a\"}, {\"text\": \"\xff\"}]")),
			[]string{"latin1.json: row 1", "invalid UTF-8"}},
		{"invalid UTF-8 in a JSON column", write("latin1cols.json", []byte("{\"text\": [\"a\", \"\xc3\"]}")),
			[]string{"latin1cols.json: row 1", `column "text"`, "invalid UTF-8"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := OpenFile(tc.path)
			if err == nil {
				err = src.Scan(context.Background(), func(int, Row) error { return nil })
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestScanHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	src, err := OpenDir(filepath.Join("testdata", "hub", "ultrachat"), "", "train_sft")
	require.NoError(t, err)
	require.ErrorIs(t, src.Scan(ctx, func(int, Row) error { return nil }), context.Canceled)
}
