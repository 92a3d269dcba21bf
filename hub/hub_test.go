package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const commit = "0123456789abcdef0123456789abcdef01234567"

// fakeHub serves the two endpoints the client uses — the revision API and resolve/ — for one
// model repository, like huggingface.co: gated unless the token matches, the resolve of a
// large file redirecting to a CDN path with X-Linked-Etag set.
func fakeHub(t *testing.T, files map[string]string, token string) (*httptest.Server, *atomic.Int32) {
	var downloads atomic.Int32
	mux := http.NewServeMux()
	authorized := func(w http.ResponseWriter, r *http.Request) bool {
		if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "gated", http.StatusUnauthorized)
			return false
		}
		return true
	}
	mux.HandleFunc("/api/models/org/tiny/revision/main", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		var sib []map[string]string
		for name := range files {
			sib = append(sib, map[string]string{"rfilename": name})
		}
		json.NewEncoder(w).Encode(map[string]any{"sha": commit, "siblings": sib})
	})
	mux.HandleFunc("/org/tiny/resolve/"+commit+"/", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/org/tiny/resolve/"+commit+"/")
		body, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if strings.HasSuffix(name, ".safetensors") {
			w.Header().Set("X-Linked-Etag", `"sha256-`+fmt.Sprint(len(body))+`"`)
			http.Redirect(w, r, "/cdn/"+name, http.StatusFound)
			return
		}
		downloads.Add(1)
		w.Header().Set("ETag", `"blob-`+strings.ReplaceAll(name, "/", "_")+`"`)
		fmt.Fprint(w, body)
	})
	mux.HandleFunc("/cdn/", func(w http.ResponseWriter, r *http.Request) {
		downloads.Add(1)
		fmt.Fprint(w, files[strings.TrimPrefix(r.URL.Path, "/cdn/")])
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &downloads
}

func TestSnapshotDownloadsIntoTheHFCacheLayout(t *testing.T) {
	files := map[string]string{"config.json": `{"a":1}`, "model.safetensors": "weights", "sub/tokenizer.json": "{}", "README.md": "# tiny"}
	srv, downloads := fakeHub(t, files, "secret")
	c := &Client{Endpoint: srv.URL, CacheDir: t.TempDir(), Token: "secret"}
	ctx := context.Background()

	dir, err := c.Snapshot(ctx, Model, "org/tiny", "", "*.json", "*.safetensors")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(c.CacheDir, "models--org--tiny", "snapshots", commit), dir)
	for name, body := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if name == "README.md" {
			assert.ErrorIs(t, err, os.ErrNotExist, "not matched by the patterns")
			continue
		}
		require.NoError(t, err, name)
		assert.Equal(t, body, string(got), name)
	}
	ref, err := os.ReadFile(filepath.Join(c.CacheDir, "models--org--tiny", "refs", "main"))
	require.NoError(t, err)
	assert.Equal(t, commit, string(ref))
	target, err := os.Readlink(filepath.Join(dir, "model.safetensors"))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join("..", "..", "blobs", "sha256-7"), target, "blobs are named by the linked ETag")
	assert.Equal(t, int32(3), downloads.Load())

	// Cached files are not fetched again; offline, the cached snapshot is served without a server.
	_, err = c.Snapshot(ctx, Model, "org/tiny", "main", "*.json", "*.safetensors")
	require.NoError(t, err)
	assert.Equal(t, int32(3), downloads.Load())
	srv.Close()
	offline := &Client{Endpoint: srv.URL, CacheDir: c.CacheDir, Offline: true}
	got, err := offline.Snapshot(ctx, Model, "org/tiny", "main")
	require.NoError(t, err)
	assert.Equal(t, dir, got)
	got, err = offline.Snapshot(ctx, Model, "org/tiny", commit)
	require.NoError(t, err)
	assert.Equal(t, dir, got)
}

func TestSnapshotErrors(t *testing.T) {
	srv, _ := fakeHub(t, map[string]string{"config.json": "{}"}, "secret")
	ctx := context.Background()
	for name, tc := range map[string]struct {
		client *Client
		repo   string
		want   string
	}{
		"gated without token": {&Client{Endpoint: srv.URL, CacheDir: t.TempDir()}, "org/tiny", "gated or private (set HF_TOKEN)"},
		"unknown repository":  {&Client{Endpoint: srv.URL, CacheDir: t.TempDir(), Token: "secret"}, "org/other", "no such repository"},
		"not a repository id": {&Client{Endpoint: srv.URL, CacheDir: t.TempDir()}, "../etc", `"../etc" is not a repository id`},
		"offline, not cached": {&Client{Endpoint: srv.URL, CacheDir: t.TempDir(), Offline: true}, "org/tiny", "offline (HF_HUB_OFFLINE) and model org/tiny@main is not in the cache"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tc.client.Snapshot(ctx, Model, tc.repo, "main")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestFromEnv(t *testing.T) {
	home := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(home, "token"), []byte("hf_file\n"), 0o600))
	t.Setenv("HF_HOME", home)
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_ENDPOINT", "http://localhost:1/")
	t.Setenv("HF_HUB_OFFLINE", "1")
	c, err := FromEnv()
	require.NoError(t, err)
	assert.Equal(t, Client{Endpoint: "http://localhost:1", Token: "hf_file", CacheDir: filepath.Join(home, "hub"), Offline: true}, *c)
	t.Setenv("HF_TOKEN", "hf_env")
	t.Setenv("HF_HUB_CACHE", "/elsewhere")
	c, err = FromEnv()
	require.NoError(t, err)
	assert.Equal(t, "hf_env", c.Token)
	assert.Equal(t, "/elsewhere", c.CacheDir)
}

func TestIsRepoID(t *testing.T) {
	for s, want := range map[string]bool{
		"mistralai/Mistral-7B-v0.1": true, "HuggingFaceH4/ultrachat_200k": true, "gpt2": true,
		"out/tiny-sft/": false, "/abs/path": false, "../x": false, "a/b/c": false, "": false, "a--b/c": false,
	} {
		assert.Equal(t, want, IsRepoID(s), s)
	}
}
