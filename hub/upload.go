package hub

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// UploadOptions say where and how UploadFolder commits.
type UploadOptions struct {
	// Kind is the repository kind (Model when empty).
	Kind RepoType
	// Revision is the branch committed to ("main" when empty); it must exist (see CreateBranch).
	Revision string
	// PathInRepo is the folder of the repository the files go to ("" is the root).
	PathInRepo string
	// Message is the commit's summary line ("Upload folder using huggingface_hub" when empty, as
	// huggingface_hub writes it).
	Message string
	// Description is the commit's body.
	Description string
	// Ignore are path.Match patterns on the slash-separated path relative to the folder; a
	// matching folder is skipped whole. ".git" folders are always skipped.
	Ignore []string
}

// CommitInfo is what an upload did.
type CommitInfo struct {
	// OID is the commit now at the head of the revision (the new commit, or the existing head
	// when nothing changed).
	OID string
	// URL is the commit's web address (empty when nothing was committed).
	URL string
	// Committed are the repository paths the commit added or changed.
	Committed []string
	// Unchanged are the paths skipped because the repository already holds the same bytes.
	Unchanged []string
	// LFSUploaded are the paths whose bytes were sent to LFS storage; an LFS file whose content
	// the Hub already stores (an earlier, interrupted push) is committed without being sent.
	LFSUploaded []string
}

// localFile is one file of a folder to upload, with what the protocol needs to know about it.
type localFile struct {
	local, repoPath string
	size            int64
	sample          []byte
	sha256          string
	mode            string // "lfs" or "regular", from preupload
	remoteOID       string
	ignored         bool
}

// The protocol's batch sizes, as huggingface_hub sends them.
const (
	preuploadBatch = 256
	lfsBatch       = 256
	sampleSize     = 512
)

// defaultCommitMessage is huggingface_hub's upload_folder message.
const defaultCommitMessage = "Upload folder using huggingface_hub"

// WhoAmI returns the user name the token belongs to (the Hub's /api/whoami-v2).
func (c *Client) WhoAmI(ctx context.Context) (string, error) {
	if c.Token == "" {
		return "", errors.New("hub: whoami: no token (set HF_TOKEN, or hub_token in the recipe)")
	}
	resp, err := c.send(ctx, "whoami", request{method: http.MethodGet, url: c.Endpoint + "/api/whoami-v2", retry: true})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var who struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&who); err != nil || who.Name == "" {
		return "", fmt.Errorf("hub: whoami: malformed answer (%v)", err)
	}
	return who.Name, nil
}

// CreateRepo creates repo (a "name" goes under the token's user), or finds it when it already
// exists, and returns its full id ("namespace/name"). private applies to a new repository only,
// as with huggingface_hub's create_repo(exist_ok=True).
func (c *Client) CreateRepo(ctx context.Context, kind RepoType, repo string, private bool) (string, error) {
	if kind == "" {
		kind = Model
	}
	if !IsRepoID(repo) {
		return "", fmt.Errorf("hub: create repo: %q is not a repository id", repo)
	}
	org, name, found := strings.Cut(repo, "/")
	if !found {
		org, name = "", repo
	}
	payload := map[string]any{"name": name, "organization": nil, "type": string(kind)}
	if org != "" {
		payload["organization"] = org
	}
	if private {
		payload["visibility"] = "private"
	}
	body, _ := json.Marshal(payload)
	resp, err := c.send(ctx, "create repo "+repo, request{method: http.MethodPost, url: c.Endpoint + "/api/repos/create",
		body: bytesBody(body), header: http.Header{"Content-Type": {"application/json"}}, retry: true, accept: []int{http.StatusConflict}})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var created struct {
		URL string `json:"url"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || created.URL == "" {
		if org != "" { // an existing repository named in full needs no answer
			return repo, nil
		}
		return "", fmt.Errorf("hub: create repo %s: the Hub named no url (%v)", repo, err)
	}
	id, err := c.repoIDFromURL(kind, created.URL)
	if err != nil {
		return "", fmt.Errorf("hub: create repo %s: %w", repo, err)
	}
	return id, nil
}

// repoIDFromURL turns https://hub/[datasets/]org/name into org/name.
func (c *Client) repoIDFromURL(kind RepoType, u string) (string, error) {
	parsed, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	p := strings.Trim(parsed.Path, "/")
	if kind == Dataset {
		p = strings.TrimPrefix(p, "datasets/")
	}
	if !IsRepoID(p) || !strings.Contains(p, "/") {
		return "", fmt.Errorf("the Hub answered url %q, which names no repository", u)
	}
	return p, nil
}

// CreateBranch creates branch from the head of main; an existing branch is left as it is.
func (c *Client) CreateBranch(ctx context.Context, kind RepoType, repo, branch string) error {
	if kind == "" {
		kind = Model
	}
	u := fmt.Sprintf("%s/api/%ss/%s/branch/%s", c.Endpoint, kind, repo, url.PathEscape(branch))
	resp, err := c.send(ctx, "create branch "+branch+" of "+repo, request{method: http.MethodPost, url: u,
		body: bytesBody([]byte("{}")), header: http.Header{"Content-Type": {"application/json"}}, retry: true, accept: []int{http.StatusConflict}})
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// UploadFolder commits the files under dir to repo, as huggingface_hub's upload_folder does over
// the Hub's HTTP API: preupload decides per file between LFS and a regular git blob and names the
// files the repository already holds (same sha256 or git blob id: skipped); the LFS batch API
// hands out upload URLs (single PUT, or numbered parts plus a completion call for large files)
// for the LFS contents it does not already store; then one NDJSON commit names every change.
func (c *Client) UploadFolder(ctx context.Context, repo, dir string, opts UploadOptions) (*CommitInfo, error) {
	if opts.Kind == "" {
		opts.Kind = Model
	}
	if opts.Revision == "" {
		opts.Revision = "main"
	}
	if opts.Message == "" {
		opts.Message = defaultCommitMessage
	}
	if !IsRepoID(repo) {
		return nil, fmt.Errorf("hub: upload: %q is not a repository id", repo)
	}
	files, err := collectFiles(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("hub: upload %s to %s: %w", dir, repo, err)
	}
	if err := c.preupload(ctx, repo, files, opts); err != nil {
		return nil, err
	}
	info := &CommitInfo{}
	var changed []*localFile
	for _, f := range files {
		switch {
		case f.ignored:
		case f.remoteOID != "" && f.remoteOID == f.oid():
			info.Unchanged = append(info.Unchanged, f.repoPath)
		default:
			changed = append(changed, f)
		}
	}
	if len(changed) == 0 {
		oid, err := c.head(ctx, repo, opts)
		if err != nil {
			return nil, err
		}
		info.OID = oid
		return info, nil
	}
	uploaded, err := c.uploadLFS(ctx, repo, changed, opts)
	if err != nil {
		return nil, err
	}
	info.LFSUploaded = uploaded
	if err := c.commit(ctx, repo, changed, opts, info); err != nil {
		return nil, err
	}
	return info, nil
}

// collectFiles lists the regular files under dir that the ignore patterns keep, with their size,
// first bytes and sha256.
func collectFiles(dir string, opts UploadOptions) ([]*localFile, error) {
	var files []*localFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			if d.Name() == ".git" || ignored(rel, opts.Ignore) {
				return filepath.SkipDir
			}
			return nil
		}
		if ignored(rel, opts.Ignore) {
			return nil
		}
		st, err := os.Stat(p) // follows links, as huggingface_hub does
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return nil
		}
		f := &localFile{local: p, repoPath: path.Join(opts.PathInRepo, rel), size: st.Size()}
		if err := f.hash(); err != nil {
			return err
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("no file to upload")
	}
	return files, nil
}

// ignored reports whether an ignore pattern matches the path or its base name.
func ignored(rel string, patterns []string) bool {
	return len(patterns) > 0 && matches(rel, patterns)
}

// hash reads the file once for its sample and sha256.
func (f *localFile) hash() error {
	in, err := os.Open(f.local)
	if err != nil {
		return err
	}
	defer in.Close()
	h := sha256.New()
	var head bytes.Buffer
	if _, err := io.Copy(io.MultiWriter(h, &limitedWriter{w: &head, n: sampleSize}), in); err != nil {
		return fmt.Errorf("%s: %w", f.local, err)
	}
	f.sample, f.sha256 = head.Bytes(), hex.EncodeToString(h.Sum(nil))
	return nil
}

// oid is the id the Hub reports for the file's current content: the sha256 of an LFS file, the
// git blob id (sha1 of "blob <size>\0" + content) of a regular one.
func (f *localFile) oid() string {
	if f.mode == "lfs" {
		return f.sha256
	}
	data, err := os.ReadFile(f.local)
	if err != nil {
		return "" // unreadable now: never equal to a remote id, so it is sent and the error surfaces there
	}
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// limitedWriter keeps the first n bytes written to it and discards the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(l.n, len(p))
		if _, err := l.w.Write(p[:k]); err != nil {
			return 0, err
		}
		l.n -= k
	}
	return len(p), nil
}

func (c *Client) apiURL(kind RepoType, repo, endpoint, revision string) string {
	return fmt.Sprintf("%s/api/%ss/%s/%s/%s", c.Endpoint, kind, repo, endpoint, url.PathEscape(revision))
}

// preupload asks the Hub, 256 files at a time, how each file is to be uploaded and which it
// already holds.
func (c *Client) preupload(ctx context.Context, repo string, files []*localFile, opts UploadOptions) error {
	for start := 0; start < len(files); start += preuploadBatch {
		chunk := files[start:min(start+preuploadBatch, len(files))]
		type fileInfo struct {
			Path   string `json:"path"`
			Sample string `json:"sample"`
			Size   int64  `json:"size"`
		}
		var req struct {
			Files []fileInfo `json:"files"`
		}
		for _, f := range chunk {
			req.Files = append(req.Files, fileInfo{f.repoPath, base64.StdEncoding.EncodeToString(f.sample), f.size})
		}
		body, _ := json.Marshal(req)
		resp, err := c.send(ctx, "preupload to "+repo, request{method: http.MethodPost, url: c.apiURL(opts.Kind, repo, "preupload", opts.Revision),
			body: bytesBody(body), header: http.Header{"Content-Type": {"application/json"}}, retry: true})
		if err != nil {
			return err
		}
		var answer struct {
			Files []struct {
				Path         string  `json:"path"`
				UploadMode   string  `json:"uploadMode"`
				ShouldIgnore bool    `json:"shouldIgnore"`
				OID          *string `json:"oid"`
			} `json:"files"`
		}
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("hub: preupload to %s: malformed answer: %w", repo, err)
		}
		byPath := map[string]*localFile{}
		for _, f := range chunk {
			byPath[f.repoPath] = f
		}
		for _, a := range answer.Files {
			f, ok := byPath[a.Path]
			if !ok || (a.UploadMode != "lfs" && a.UploadMode != "regular") {
				return fmt.Errorf("hub: preupload to %s: malformed answer for %q (uploadMode %q)", repo, a.Path, a.UploadMode)
			}
			f.mode, f.ignored = a.UploadMode, a.ShouldIgnore
			if a.OID != nil {
				f.remoteOID = *a.OID
			}
			delete(byPath, a.Path)
		}
		if len(byPath) > 0 {
			return fmt.Errorf("hub: preupload to %s: the answer left out %d file(s)", repo, len(byPath))
		}
	}
	for _, f := range files {
		if f.size == 0 { // empty files cannot go to LFS storage
			f.mode = "regular"
		}
	}
	return nil
}

// lfsAction is one action of an LFS batch answer.
type lfsAction struct {
	Href   string            `json:"href"`
	Header map[string]string `json:"header"`
}

// uploadLFS sends the LFS files' contents the Hub does not hold yet and returns their paths.
func (c *Client) uploadLFS(ctx context.Context, repo string, files []*localFile, opts UploadOptions) ([]string, error) {
	byOID := map[string][]*localFile{}
	var objects []*localFile
	for _, f := range files {
		if f.mode != "lfs" {
			continue
		}
		if len(byOID[f.sha256]) == 0 {
			objects = append(objects, f)
		}
		byOID[f.sha256] = append(byOID[f.sha256], f)
	}
	prefix := ""
	if opts.Kind == Dataset {
		prefix = "datasets/"
	}
	batchURL := fmt.Sprintf("%s/%s%s.git/info/lfs/objects/batch", c.Endpoint, prefix, repo)
	var uploaded []string
	for start := 0; start < len(objects); start += lfsBatch {
		chunk := objects[start:min(start+lfsBatch, len(objects))]
		type object struct {
			OID  string `json:"oid"`
			Size int64  `json:"size"`
		}
		req := map[string]any{"operation": "upload", "transfers": []string{"basic", "multipart"}, "hash_algo": "sha256",
			"ref": map[string]string{"name": opts.Revision}}
		var objs []object
		for _, f := range chunk {
			objs = append(objs, object{f.sha256, f.size})
		}
		req["objects"] = objs
		body, _ := json.Marshal(req)
		resp, err := c.send(ctx, "LFS batch for "+repo, request{method: http.MethodPost, url: batchURL, body: bytesBody(body),
			header: lfsHeaders(), retry: true})
		if err != nil {
			return nil, err
		}
		var answer struct {
			Objects []struct {
				OID     string               `json:"oid"`
				Size    *int64               `json:"size"`
				Actions map[string]lfsAction `json:"actions"`
				Error   *struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			} `json:"objects"`
		}
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("hub: LFS batch for %s: malformed answer: %w", repo, err)
		}
		var problems []string
		for _, o := range answer.Objects {
			fs, ok := byOID[o.OID]
			switch {
			case !ok || o.Size == nil:
				return nil, fmt.Errorf("hub: LFS batch for %s: malformed answer for object %q", repo, o.OID)
			case o.Error != nil:
				problems = append(problems, fmt.Sprintf("%s (%s): %d %s", fs[0].repoPath, o.OID, o.Error.Code, o.Error.Message))
				continue
			}
			up, ok := o.Actions["upload"]
			if !ok { // the Hub already stores this content
				continue
			}
			if err := c.sendLFSObject(ctx, fs[0], up); err != nil {
				return nil, err
			}
			if verify, ok := o.Actions["verify"]; ok {
				vb, _ := json.Marshal(map[string]any{"oid": o.OID, "size": fs[0].size})
				resp, err := c.send(ctx, "LFS verify of "+fs[0].repoPath, request{method: http.MethodPost, url: verify.Href,
					body: bytesBody(vb), header: http.Header{"Content-Type": {"application/json"}}, retry: true})
				if err != nil {
					return nil, err
				}
				resp.Body.Close()
			}
			for _, f := range fs {
				uploaded = append(uploaded, f.repoPath)
			}
		}
		if len(problems) > 0 {
			return nil, fmt.Errorf("hub: LFS batch for %s refused: %s", repo, strings.Join(problems, "; "))
		}
	}
	return uploaded, nil
}

func lfsHeaders() http.Header {
	return http.Header{"Accept": {"application/vnd.git-lfs+json"}, "Content-Type": {"application/vnd.git-lfs+json"}}
}

// sendLFSObject PUTs a file to its upload URL, whole or (when the action names a chunk_size)
// in numbered parts followed by a completion call listing each part's ETag. Upload URLs are
// pre-signed: no token is sent to them.
func (c *Client) sendLFSObject(ctx context.Context, f *localFile, up lfsAction) error {
	if up.Href == "" {
		return fmt.Errorf("hub: LFS upload of %s: the batch answer has no upload URL", f.repoPath)
	}
	op := "LFS upload of " + f.repoPath
	chunk, multipart := up.Header["chunk_size"]
	if !multipart {
		resp, err := c.send(ctx, op, request{method: http.MethodPut, url: up.Href, body: fileBody(f.local, 0, f.size), retry: true, noAuth: true})
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	size, err := strconv.ParseInt(chunk, 10, 64)
	if err != nil || size <= 0 {
		return fmt.Errorf("hub: %s: malformed chunk_size %q", op, chunk)
	}
	var parts []int
	for k := range up.Header {
		if n, err := strconv.Atoi(k); err == nil && n > 0 {
			parts = append(parts, n)
		}
	}
	sort.Ints(parts)
	if want := int(math.Ceil(float64(f.size) / float64(size))); len(parts) != want {
		return fmt.Errorf("hub: %s: the Hub gave %d part URL(s) for %d byte(s) in parts of %d (want %d)", op, len(parts), f.size, size, want)
	}
	type part struct {
		PartNumber int    `json:"partNumber"`
		ETag       string `json:"etag"`
	}
	var done []part
	for i, n := range parts {
		off := int64(i) * size
		resp, err := c.send(ctx, fmt.Sprintf("%s, part %d", op, n), request{method: http.MethodPut, url: up.Header[strconv.Itoa(n)],
			body: fileBody(f.local, off, min(size, f.size-off)), retry: true, noAuth: true})
		if err != nil {
			return err
		}
		etag := resp.Header.Get("ETag")
		resp.Body.Close()
		if etag == "" {
			return fmt.Errorf("hub: %s: part %d came back without an ETag", op, n)
		}
		done = append(done, part{i + 1, etag})
	}
	body, _ := json.Marshal(map[string]any{"oid": f.sha256, "parts": done})
	resp, err := c.send(ctx, op+", completion", request{method: http.MethodPost, url: up.Href, body: bytesBody(body), header: lfsHeaders(), retry: true, noAuth: true})
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// commit sends the NDJSON commit: a header line, then one line per added file (regular files
// inline in base64, LFS files by sha256 and size).
func (c *Client) commit(ctx context.Context, repo string, files []*localFile, opts UploadOptions, info *CommitInfo) error {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	line := func(key string, value any) error { return enc.Encode(map[string]any{"key": key, "value": value}) }
	if err := line("header", map[string]string{"summary": opts.Message, "description": opts.Description}); err != nil {
		return err
	}
	for _, f := range files {
		var err error
		if f.mode == "lfs" {
			err = line("lfsFile", map[string]any{"path": f.repoPath, "algo": "sha256", "oid": f.sha256, "size": f.size})
		} else {
			data, rerr := os.ReadFile(f.local)
			if rerr != nil {
				return fmt.Errorf("hub: commit to %s: %w", repo, rerr)
			}
			err = line("file", map[string]string{"content": base64.StdEncoding.EncodeToString(data), "path": f.repoPath, "encoding": "base64"})
		}
		if err != nil {
			return err
		}
		info.Committed = append(info.Committed, f.repoPath)
	}
	// A commit is retried only when the Hub refused it outright (429): after a 5xx it may have
	// landed, and a second one would duplicate it (huggingface_hub does not retry commits).
	resp, err := c.send(ctx, "commit to "+repo+"@"+opts.Revision, request{method: http.MethodPost, url: c.apiURL(opts.Kind, repo, "commit", opts.Revision),
		body: bytesBody(body.Bytes()), header: http.Header{"Content-Type": {"application/x-ndjson"}}, retry: true, retryOnly: []int{http.StatusTooManyRequests}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var answer struct {
		CommitURL string `json:"commitUrl"`
		CommitOID string `json:"commitOid"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || answer.CommitOID == "" {
		return fmt.Errorf("hub: commit to %s: malformed answer (%v)", repo, err)
	}
	info.OID, info.URL = answer.CommitOID, answer.CommitURL
	return nil
}

// head returns the commit at the head of the upload's revision.
func (c *Client) head(ctx context.Context, repo string, opts UploadOptions) (string, error) {
	resp, err := c.send(ctx, "revision of "+repo, request{method: http.MethodGet, url: c.apiURL(opts.Kind, repo, "revision", opts.Revision), retry: true})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var info struct {
		SHA string `json:"sha"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return "", fmt.Errorf("hub: revision of %s: %w", repo, err)
	}
	return info.SHA, nil
}

// body opens a request body; it is called again for each attempt.
type body func() (io.ReadCloser, int64, error)

func bytesBody(b []byte) body {
	return func() (io.ReadCloser, int64, error) { return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil }
}

// fileBody is n bytes of the file at path from offset off.
func fileBody(path string, off, n int64) body {
	return func() (io.ReadCloser, int64, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, err
		}
		return struct {
			io.Reader
			io.Closer
		}{io.NewSectionReader(f, off, n), f}, n, nil
	}
}

// acceptedStatus reports whether code is a success or one of the codes the caller handles.
func acceptedStatus(code int, accept []int) bool {
	return code < 300 || slices.Contains(accept, code)
}
