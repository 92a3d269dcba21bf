package data

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"handbook/tokenizer"
)

var tokCache sync.Map

// loadTokenizer builds (once) a real tokenizer from package tokenizer's testdata.
func loadTokenizer(t testing.TB, name string) *tokenizer.Tokenizer {
	t.Helper()
	if tok, ok := tokCache.Load(name); ok {
		return tok.(*tokenizer.Tokenizer)
	}
	dir := filepath.Join("..", "tokenizer", "testdata", name)
	cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	require.NoError(t, err)
	tok, err := tokenizer.New(readGz(t, filepath.Join(dir, "tokenizer.json.gz")), cfg)
	require.NoError(t, err)
	tokCache.Store(name, tok)
	return tok
}

func readGz(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var r io.Reader = f
	if filepath.Ext(path) == ".gz" {
		gz, err := gzip.NewReader(f)
		require.NoError(t, err)
		r = gz
	}
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return b
}

// datasetOf builds an in-memory Dataset from JSON objects.
func datasetOf(t testing.TB, rows []json.RawMessage) *Dataset {
	t.Helper()
	ds := &Dataset{}
	for i, raw := range rows {
		row, err := decodeRow(raw)
		require.NoError(t, err)
		ds.Rows = append(ds.Rows, row)
		ds.Origins = append(ds.Origins, Origin{Source: "inline", Row: i})
	}
	return ds
}

// writeJSONL writes rows (anything json.Marshal takes) to dir/name.
func writeJSONL(t testing.TB, dir, name string, rows []map[string]any) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, r := range rows {
		require.NoError(t, enc.Encode(r))
	}
	return path
}

func ptr[T any](v T) *T { return &v }

func rowsN(n int, prefix string) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{"prompt": fmt.Sprintf("%s prompt %d", prefix, i), "completion": fmt.Sprintf(" answer %d", i)}
	}
	return out
}
