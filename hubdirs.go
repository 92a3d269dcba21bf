package handbook

import (
	"context"
	"fmt"
	"os"

	"handbook/data"
	"handbook/hub"
)

// modelFiles are the files of a model repository a run reads: config, weights (safetensors
// only) and tokenizer.
var modelFiles = []string{"*.json", "*.safetensors", "*.jinja"}

// dataFiles are the data files OpenDir reads in a dataset repository.
var dataFiles = []string{"*.parquet", "*.jsonl", "*.ndjson", "*.json"}

// modelDir returns nameOrPath when it is a local directory, else the local snapshot of that Hub
// model repository at revision (downloaded into the Hugging Face cache when missing).
func modelDir(ctx context.Context, nameOrPath, revision string) (string, error) {
	if st, err := os.Stat(nameOrPath); err == nil && st.IsDir() {
		return nameOrPath, nil
	}
	if !hub.IsRepoID(nameOrPath) {
		return "", fmt.Errorf("%q is neither a local directory nor a Hub repository id", nameOrPath)
	}
	c, err := hub.FromEnv()
	if err != nil {
		return "", err
	}
	return c.Snapshot(ctx, hub.Model, nameOrPath, revision, modelFiles...)
}

// HubLoader is the data.Loader recipes use: a dataset id that is not a local path but a Hub
// dataset id opens from a snapshot of its repository's data files in the Hugging Face cache
// (downloaded unless HF_HUB_OFFLINE); data.LocalLoader opens everything, the snapshot included.
type HubLoader struct{}

// Open implements data.Loader.
func (HubLoader) Open(ctx context.Context, ref data.DatasetRef) (data.Source, error) {
	if _, err := os.Stat(ref.ID); err == nil || !hub.IsRepoID(ref.ID) {
		return data.LocalLoader{}.Open(ctx, ref)
	}
	c, err := hub.FromEnv()
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", ref, err)
	}
	dir, err := c.Snapshot(ctx, hub.Dataset, ref.ID, "", dataFiles...)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", ref, err)
	}
	ref.ID = dir
	return data.LocalLoader{}.Open(ctx, ref)
}
