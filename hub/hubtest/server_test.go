package hubtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// post sends a raw request the way a client of the protocol would.
func post(t *testing.T, s *Server, path, contentType, token, body string) (*http.Response, string) {
	req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp, resp.Header.Get("X-Error-Message")
}

func ndjson(lines ...map[string]any) string {
	var b strings.Builder
	for _, l := range lines {
		data, _ := json.Marshal(l)
		b.Write(append(data, '\n'))
	}
	return b.String()
}

func header(summary string) map[string]any {
	return map[string]any{"key": "header", "value": map[string]string{"summary": summary, "description": ""}}
}

func file(path, content string) map[string]any {
	return map[string]any{"key": "file", "value": map[string]string{"path": path, "encoding": "base64",
		"content": base64.StdEncoding.EncodeToString([]byte(content))}}
}

func TestServerRefusesWhatTheHubRefuses(t *testing.T) {
	s := New("alice", "tok")
	defer s.Close()
	s.LFSThreshold = 16
	resp, _ := post(t, s, "/api/repos/create", "application/json", "tok", `{"name":"m","organization":null}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	const commit = "/api/models/alice/m/commit/main"
	for name, tc := range map[string]struct {
		path, contentType, token, body string
		status                         int
		message                        string
	}{
		"no token":            {commit, "application/x-ndjson", "", ndjson(header("x")), 401, "Invalid credentials"},
		"wrong token":         {"/api/repos/create", "application/json", "nope", `{"name":"n"}`, 401, "Invalid credentials"},
		"existing repository": {"/api/repos/create", "application/json", "tok", `{"name":"m"}`, 409, "already created"},
		"foreign namespace":   {"/api/repos/create", "application/json", "tok", `{"name":"m","organization":"org"}`, 403, "rights"},
		"not ndjson":          {commit, "application/json", "tok", ndjson(header("x")), 400, "x-ndjson"},
		"no header line":      {commit, "application/x-ndjson", "tok", ndjson(file("a.txt", "a")), 400, "header line"},
		"empty summary":       {commit, "application/x-ndjson", "tok", ndjson(header("")), 400, "summary is empty"},
		"large regular file":  {commit, "application/x-ndjson", "tok", ndjson(header("x"), file("a.txt", strings.Repeat("a", 16))), 400, "LFS"},
		"binary regular file": {commit, "application/x-ndjson", "tok", ndjson(header("x"), file("w.safetensors", "x")), 400, "LFS"},
		"escaping path":       {commit, "application/x-ndjson", "tok", ndjson(header("x"), file("../a.txt", "a")), 400, "malformed file line"},
		"LFS file never uploaded": {commit, "application/x-ndjson", "tok", ndjson(header("x"), map[string]any{"key": "lfsFile",
			"value": map[string]any{"path": "w.bin", "algo": "sha256", "oid": strings.Repeat("ab", 32), "size": 3}}), 422, "was not uploaded"},
		"unknown operation": {commit, "application/x-ndjson", "tok", ndjson(header("x"), map[string]any{"key": "rename", "value": map[string]string{}}), 400, "unknown commit operation"},
		"unknown branch":    {"/api/models/alice/m/commit/dev", "application/x-ndjson", "tok", ndjson(header("x")), 404, "Invalid rev id"},
		"batch without LFS media type": {"/alice/m.git/info/lfs/objects/batch", "application/json", "tok",
			`{"operation":"upload","transfers":["basic"],"hash_algo":"sha256","objects":[]}`, 406, "vnd.git-lfs+json"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, msg := post(t, s, tc.path, tc.contentType, tc.token, tc.body)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Contains(t, msg, tc.message)
		})
	}
	assert.Equal(t, 1, s.Commits(), "only the repository's initial commit")
	resp, _ = post(t, s, commit, "application/x-ndjson", "tok", ndjson(header("ok"), file("a.txt", "small")))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []byte("small"), s.Files("alice/m", "main")["a.txt"])
	assert.Contains(t, s.Files("alice/m", "main"), ".gitattributes", "a new repository starts with the Hub's .gitattributes")
}
