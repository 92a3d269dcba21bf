package hub_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/hub"
	"handbook/hub/hubtest"
)

// writeTree creates files (slash paths → content) under a new temporary folder.
func writeTree(t *testing.T, files map[string][]byte) string {
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, data, 0o644))
	}
	return dir
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func oidOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// newHub is a fake Hub with small thresholds (LFS from 2 KiB, multipart from 1 KiB objects in
// 400-byte parts) so that tiny files take every path of the protocol.
func newHub(t *testing.T) (*hubtest.Server, *hub.Client) {
	s := hubtest.New("alice", "hf_write")
	t.Cleanup(s.Close)
	s.LFSThreshold, s.MultipartThreshold, s.PartSize = 2048, 1024, 400
	c := &hub.Client{Endpoint: s.URL, Token: "hf_write", CacheDir: t.TempDir(), Retry: hub.RetryPolicy{BaseWait: time.Millisecond, MaxWait: 4 * time.Millisecond}}
	return s, c
}

func TestUploadFolderRoundTripsThroughTheProtocol(t *testing.T) {
	s, c := newHub(t)
	ctx := context.Background()
	files := map[string][]byte{
		"config.json":          []byte(`{"model_type":"llama"}`),
		"README.md":            []byte("---\nlibrary_name: transformers\n---\n# card\n"),
		"model.safetensors":    pattern(300, 1),  // LFS by the repository's patterns, one PUT
		"big.txt":              pattern(2500, 2), // LFS by size, multipart in 7 parts
		"runs/x/events.out":    []byte("tfevents"),
		"empty.txt":            {},
		"checkpoint-2/x.json":  []byte("{}"), // ignored, as transformers ignores checkpoint-*
		"_private/skip.txt":    []byte("no"),
		"sub/dir/weights.bin":  pattern(50, 3),
		"sub/dir/same-as.bin":  pattern(50, 3), // same content: one LFS object
		"sub/dir/tokenizer.md": []byte("tok"),
	}
	dir := writeTree(t, files)

	repo, err := c.CreateRepo(ctx, hub.Model, "tiny-sft", true)
	require.NoError(t, err)
	assert.Equal(t, "alice/tiny-sft", repo, "a bare name goes under the token's user")
	assert.True(t, s.Private("alice/tiny-sft"))
	again, err := c.CreateRepo(ctx, hub.Model, "tiny-sft", false)
	require.NoError(t, err, "an existing repository is found, not an error (exist_ok)")
	assert.Equal(t, repo, again)

	info, err := c.UploadFolder(ctx, repo, dir, hub.UploadOptions{Message: "End of training", Ignore: []string{"_*", "checkpoint-*"}})
	require.NoError(t, err)
	assert.Len(t, info.OID, 40)
	assert.ElementsMatch(t, []string{"model.safetensors", "big.txt", "sub/dir/weights.bin", "sub/dir/same-as.bin"}, info.LFSUploaded)
	assert.Len(t, info.Committed, 9)

	got := s.Files(repo, "main")
	for name, data := range files {
		if strings.HasPrefix(name, "checkpoint-") || strings.HasPrefix(name, "_") {
			assert.NotContains(t, got, name)
			continue
		}
		assert.Equal(t, data, got[name], name)
	}
	assert.Equal(t, 1, s.Count(http.MethodPut, "/lfs/upload/"+oidOf(files["model.safetensors"])))
	assert.Equal(t, 1, s.Count(http.MethodPut, "/lfs/upload/"+oidOf(files["sub/dir/weights.bin"])), "one upload for two files with the same bytes")
	assert.Equal(t, 7, s.Count(http.MethodPut, "/lfs/part/"+oidOf(files["big.txt"])))
	assert.Equal(t, 1, s.Count(http.MethodPost, "/lfs/complete/"+oidOf(files["big.txt"])))
	assert.Equal(t, 1, s.Count(http.MethodPost, "/commit/main"))

	// Downloading the repository back through the cache gives the same bytes.
	snap, err := c.Snapshot(ctx, hub.Model, repo, "main")
	require.NoError(t, err)
	for name := range got {
		data, err := os.ReadFile(filepath.Join(snap, filepath.FromSlash(name)))
		require.NoError(t, err, name)
		assert.True(t, bytes.Equal(got[name], data), name)
	}

	// Unchanged files are not sent again: no commit at all, then a commit of the one change.
	commits := s.Commits()
	info, err = c.UploadFolder(ctx, repo, dir, hub.UploadOptions{Ignore: []string{"_*", "checkpoint-*"}})
	require.NoError(t, err)
	assert.Empty(t, info.Committed)
	assert.Len(t, info.Unchanged, 9)
	assert.Equal(t, commits, s.Commits())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"qwen2"}`), 0o644))
	info, err = c.UploadFolder(ctx, repo, dir, hub.UploadOptions{Ignore: []string{"_*", "checkpoint-*"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"config.json"}, info.Committed)
	assert.Empty(t, info.LFSUploaded)
}

func TestUploadFolderToABranchAndFolder(t *testing.T) {
	s, c := newHub(t)
	ctx := context.Background()
	dir := writeTree(t, map[string][]byte{"a.json": []byte("{}"), "w.safetensors": pattern(64, 9)})
	repo, err := c.CreateRepo(ctx, hub.Model, "alice/x", false)
	require.NoError(t, err)
	require.NoError(t, c.CreateBranch(ctx, hub.Model, repo, "v1.0"))
	require.NoError(t, c.CreateBranch(ctx, hub.Model, repo, "v1.0"), "an existing branch is kept")
	_, err = c.UploadFolder(ctx, repo, dir, hub.UploadOptions{Revision: "v1.0", PathInRepo: "last-checkpoint"})
	require.NoError(t, err)
	assert.Contains(t, s.Files(repo, "v1.0"), "last-checkpoint/w.safetensors")
	assert.NotContains(t, s.Files(repo, "main"), "last-checkpoint/a.json")
}

func TestInterruptedUploadResumesWithoutResendingFinishedLFSFiles(t *testing.T) {
	s, c := newHub(t)
	ctx := context.Background()
	first, second := pattern(1500, 4), pattern(900, 5)
	dir := writeTree(t, map[string][]byte{"a.safetensors": first, "b.safetensors": second, "config.json": []byte("{}")})
	repo, err := c.CreateRepo(ctx, hub.Model, "resume", false)
	require.NoError(t, err)

	// The upload dies on the second object (a refused PUT is not retried) ...
	s.Fail(http.MethodPut, "/lfs/upload/"+oidOf(second), http.StatusForbidden, 1, "")
	_, err = c.UploadFolder(ctx, repo, dir, hub.UploadOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "403")
	assert.Equal(t, 4, s.Count(http.MethodPut, "/lfs/part/"+oidOf(first)), "the first object was sent in full")
	assert.Equal(t, 0, s.Count(http.MethodPost, "/commit/"))

	// ... then the commit dies (after every LFS object is stored) ...
	s.Fail(http.MethodPost, "/commit/main", http.StatusInternalServerError, 1, "")
	_, err = c.UploadFolder(ctx, repo, dir, hub.UploadOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "500")
	assert.Equal(t, 1, s.Count(http.MethodPut, "/lfs/upload/"+oidOf(second)))

	// ... and the third push sends no LFS byte again: it only commits.
	info, err := c.UploadFolder(ctx, repo, dir, hub.UploadOptions{})
	require.NoError(t, err)
	assert.Empty(t, info.LFSUploaded)
	assert.Equal(t, 4, s.Count(http.MethodPut, "/lfs/part/"+oidOf(first)))
	assert.Equal(t, 1, s.Count(http.MethodPut, "/lfs/upload/"+oidOf(second)))
	assert.Equal(t, first, s.Files(repo, "main")["a.safetensors"])
	assert.Equal(t, second, s.Files(repo, "main")["b.safetensors"])
}

func TestUploadRetriesTransientFailures(t *testing.T) {
	s, c := newHub(t)
	ctx := context.Background()
	dir := writeTree(t, map[string][]byte{"w.safetensors": pattern(1200, 6), "c.json": []byte("{}")})
	repo, err := c.CreateRepo(ctx, hub.Model, "retry", false)
	require.NoError(t, err)
	s.Fail(http.MethodPost, "/preupload/", http.StatusServiceUnavailable, 2, "")
	s.Fail(http.MethodPost, "/info/lfs/objects/batch", http.StatusTooManyRequests, 1, "0")
	s.Fail(http.MethodPut, "/lfs/part/", http.StatusBadGateway, 1, "")
	s.Fail(http.MethodPost, "/commit/", http.StatusTooManyRequests, 1, "")
	_, err = c.UploadFolder(ctx, repo, dir, hub.UploadOptions{})
	require.NoError(t, err)
	assert.Equal(t, []byte("{}"), s.Files(repo, "main")["c.json"])

	c.Retry.MaxRetries = 2
	s.Fail(http.MethodPost, "/preupload/", http.StatusServiceUnavailable, 3, "")
	_, err = c.UploadFolder(ctx, repo, dir, hub.UploadOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503 Service Unavailable")
}

func TestUploadErrorsSayWhatWentWrong(t *testing.T) {
	ctx := context.Background()
	dir := writeTree(t, map[string][]byte{"c.json": []byte(`{"a":1}`), "notes.txt": []byte("x")})
	for name, tc := range map[string]struct {
		prepare func(s *hubtest.Server, c *hub.Client)
		run     func(c *hub.Client) error
		want    []string
	}{
		"401 bad token": {
			prepare: func(_ *hubtest.Server, c *hub.Client) { c.Token = "hf_wrong" },
			run:     func(c *hub.Client) error { _, err := c.CreateRepo(ctx, hub.Model, "alice/m", false); return err },
			want:    []string{"create repo alice/m", "401 Unauthorized", "missing or invalid", "HF_TOKEN"},
		},
		"403 other namespace": {
			run:  func(c *hub.Client) error { _, err := c.CreateRepo(ctx, hub.Model, "bigorg/m", false); return err },
			want: []string{"403 Forbidden", "may not write", `namespace "bigorg"`},
		},
		"404 no repository": {
			run: func(c *hub.Client) error {
				_, err := c.UploadFolder(ctx, "alice/none", dir, hub.UploadOptions{})
				return err
			},
			want: []string{"preupload to alice/none", "404 Not Found", "no such repository or branch"},
		},
		"404 no branch": {
			run: func(c *hub.Client) error {
				_, err := c.UploadFolder(ctx, "alice/m", dir, hub.UploadOptions{Revision: "dev"})
				return err
			},
			want: []string{"404 Not Found", "Invalid rev id: dev"},
		},
		"409 conflict": {
			prepare: func(s *hubtest.Server, _ *hub.Client) {
				s.Fail(http.MethodPost, "/commit/", http.StatusConflict, 1, "")
			},
			run: func(c *hub.Client) error {
				_, err := c.UploadFolder(ctx, "alice/m", dir, hub.UploadOptions{})
				return err
			},
			want: []string{"commit to alice/m@main", "409 Conflict", "conflict with the repository"},
		},
		"413 too large": {
			prepare: func(s *hubtest.Server, _ *hub.Client) { s.MaxCommitBytes = 100 },
			run: func(c *hub.Client) error {
				_, err := c.UploadFolder(ctx, "alice/m", dir, hub.UploadOptions{})
				return err
			},
			want: []string{"413 Request Entity Too Large", "too large", "commit payload too large"},
		},
		"whoami without token": {
			prepare: func(_ *hubtest.Server, c *hub.Client) { c.Token = "" },
			run:     func(c *hub.Client) error { _, err := c.WhoAmI(ctx); return err },
			want:    []string{"no token", "HF_TOKEN"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, c := newHub(t)
			_, err := c.CreateRepo(ctx, hub.Model, "m", false)
			require.NoError(t, err)
			if tc.prepare != nil {
				tc.prepare(s, c)
			}
			err = tc.run(c)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestWhoAmI(t *testing.T) {
	_, c := newHub(t)
	name, err := c.WhoAmI(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "alice", name)
}
