package handbook

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/data"
	"handbook/model"
)

// TestLoadPretrained: a model and its tokenizer load from a local directory or a Hub id (served by
// a fake Hub); a directory without weights is an error naming the option that starts from scratch,
// and with it, random weights drawn from the seed.
func TestLoadPretrained(t *testing.T) {
	ctx := context.Background()
	_, _, err := LoadPretrained(ctx, "recipes/tiny/model", nil)
	assert.ErrorContains(t, err, "has no safetensors weights")
	assert.ErrorContains(t, err, "PretrainedOptions.FromScratch")

	opts := &PretrainedOptions{FromScratch: true, Seed: 3}
	m, tok, err := LoadPretrained(ctx, "recipes/tiny/model", opts)
	require.NoError(t, err)
	assert.LessOrEqual(t, tok.VocabSize(), m.Config.VocabSize, "the tokenizer saved with the model")
	out := t.TempDir()
	require.NoError(t, m.Save(out, model.SaveOptions{}))
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		raw, err := os.ReadFile(filepath.Join("recipes/tiny/model", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(out, f), raw, 0o644))
	}

	srv := fakeHub(t, map[string]string{"org/tiny-init": out})
	t.Setenv("HF_HOME", t.TempDir())
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HUB_OFFLINE", "")
	hubModel, _, err := LoadPretrained(ctx, "org/tiny-init", &PretrainedOptions{Backend: m.Backend()})
	require.NoError(t, err)
	name := "model.layers.0.mlp.up_proj.weight"
	want, err := m.Weights[name].LocalClone()
	require.NoError(t, err)
	got, err := hubModel.Weights[name].LocalClone()
	require.NoError(t, err)
	assert.Equal(t, want.Value(), got.Value(), "the Hub copy of the seeded model")

	rows, err := data.Load(ctx, HubLoader{}, data.DatasetRef{ID: "recipes/tiny/data/preference", Split: "test"})
	require.NoError(t, err)
	assert.Equal(t, jsonlRows(t, "recipes/tiny/data/preference/test.jsonl"), rows.Len())
}
