package handbook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeHub serves repositories (URL prefix "org/name" for models, "datasets/org/name" for
// datasets) the way huggingface.co's revision API and resolve/ endpoints do; every file is
// read from a local directory.
func fakeHub(t *testing.T, repos map[string]string) *httptest.Server {
	const sha = "fedcba9876543210fedcba9876543210fedcba98"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/")
		if rest, ok := strings.CutPrefix(p, "api/"); ok { // api/models/org/name/revision/main
			kind, repo, _ := strings.Cut(rest, "/")
			repo = strings.TrimSuffix(repo, "/revision/main")
			if kind == "datasets" {
				repo = "datasets/" + repo
			}
			dir, ok := repos[repo]
			if !ok {
				http.NotFound(w, r)
				return
			}
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			var sib []map[string]string
			for _, e := range entries {
				sib = append(sib, map[string]string{"rfilename": e.Name()})
			}
			require.NoError(t, json.NewEncoder(w).Encode(map[string]any{"sha": sha, "siblings": sib}))
			return
		}
		repo, file, ok := strings.Cut(p, "/resolve/"+sha+"/")
		dir, known := repos[repo]
		if !ok || !known {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, filepath.Join(dir, file))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestRunFromTheHub runs the tiny SFT recipe with its model, tokenizer and dataset named by Hub
// ids, served by a fake Hub: the files land in HF_HOME's cache and the run trains on them.
func TestRunFromTheHub(t *testing.T) {
	data := t.TempDir()
	raw, err := os.ReadFile("recipes/tiny/data/sft/train.jsonl")
	require.NoError(t, err)
	rows := strings.SplitAfterN(string(raw), "\n", 41)[:40]
	require.NoError(t, os.WriteFile(filepath.Join(data, "train.jsonl"), []byte(strings.Join(rows, "")), 0o644))
	srv := fakeHub(t, map[string]string{"org/tiny": "recipes/tiny/model", "datasets/org/chat": data})
	home := t.TempDir()
	t.Setenv("HF_HOME", home)
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HUB_OFFLINE", "")

	run := func() (*RunResult, error) {
		r, err := LoadRecipe(tinyRecipe, TaskSFT, []string{"--model_name_or_path=org/tiny",
			`--dataset_mixture={"datasets":[{"id":"org/chat","split":"train"}],"test_split_size":8}`,
			"--max_steps=2", "--eval_strategy=no", "--save_strategy=no", "--report_to=none", "--output_dir=" + t.TempDir()})
		require.NoError(t, err)
		return Run(context.Background(), r, RunOptions{})
	}
	res, err := run()
	require.NoError(t, err)
	assert.Equal(t, 2, res.Train.GlobalStep)
	assert.Equal(t, 32, res.TrainRows)
	for _, f := range []string{"models--org--tiny/snapshots/fedcba9876543210fedcba9876543210fedcba98/tokenizer.json",
		"models--org--tiny/refs/main", "datasets--org--chat/snapshots/fedcba9876543210fedcba9876543210fedcba98/train.jsonl"} {
		assert.FileExists(t, filepath.Join(home, "hub", f))
	}

	// Offline, the cached snapshots serve the same run without the server.
	srv.Close()
	t.Setenv("HF_HUB_OFFLINE", "1")
	res, err = run()
	require.NoError(t, err)
	assert.Equal(t, 2, res.Train.GlobalStep)

	// A name that is neither a directory nor a repository id is an error naming the key.
	r, err := LoadRecipe(tinyRecipe, TaskSFT, []string{"--model_name_or_path=no/such/dir", "--output_dir=" + t.TempDir()})
	require.NoError(t, err)
	_, err = Run(context.Background(), r, RunOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("%s: model_name_or_path: %q is neither a local directory nor a Hub repository id", tinyRecipe, "no/such/dir"))
}
