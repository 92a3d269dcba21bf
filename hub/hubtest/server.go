package hubtest

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Request is one request the server answered.
type Request struct {
	Method, Path string
	Status       int
}

// Server is the fake Hub. Create it with New; its fields may be changed before the first
// request.
type Server struct {
	*httptest.Server
	// User owns Token; only User's namespace can be written.
	User, Token string
	// LFSThreshold is the size from which files must go through LFS (the Hub's 10 MiB).
	LFSThreshold int64
	// MultipartThreshold is the LFS object size from which uploads are multipart, in parts of
	// PartSize bytes.
	MultipartThreshold, PartSize int64
	// MaxCommitBytes is the largest commit body accepted (413 above it).
	MaxCommitBytes int64

	mu       sync.Mutex
	repos    map[string]*repo // by "model:org/name"
	lfs      map[string][]byte
	parts    map[string]map[int][]byte
	requests []Request
	faults   []*fault
	commits  int
}

type repo struct {
	private  bool
	log      map[string][]string        // branch → commit summaries, oldest first
	branches map[string]string          // branch → commit
	trees    map[string]map[string]blob // commit → path → content
}

// blob is a file of a commit: inline bytes, or an LFS object id.
type blob struct {
	data   []byte
	lfsOID string
}

type fault struct {
	method, pathPart string
	status           int
	retryAfter       string
	times            int
}

// New starts a fake Hub for user with token, with the Hub's thresholds (10 MiB LFS, multipart
// from 20 MiB in 8 MiB parts, 1 GiB commits). Close it when done.
func New(user, token string) *Server {
	s := &Server{User: user, Token: token, LFSThreshold: 10 << 20, MultipartThreshold: 20 << 20, PartSize: 8 << 20,
		MaxCommitBytes: 1 << 30, repos: map[string]*repo{}, lfs: map[string][]byte{}, parts: map[string]map[int][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Start is New for one test: the server is closed when the test ends, and the environment's Hub
// client (hub.FromEnv: HF_ENDPOINT, HF_TOKEN, a fresh HF_HOME, online) points at it with the
// user's token meanwhile.
func Start(t testing.TB, user, token string) *Server {
	s := New(user, token)
	t.Cleanup(s.Close)
	s.setenv(t)
	return s
}

func (s *Server) setenv(t testing.TB) {
	t.Setenv("HF_ENDPOINT", s.URL)
	t.Setenv("HF_TOKEN", s.Token)
	t.Setenv("HF_HOME", t.TempDir())
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HUB_OFFLINE", "")
}

// Fail answers the next times requests whose method is method and whose path contains pathPart
// with status (and a Retry-After header when retryAfter is set).
func (s *Server) Fail(method, pathPart string, status, times int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{method, pathPart, status, retryAfter, times})
}

// Requests returns the requests answered so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Count returns how many answered requests had method, a path containing pathPart and a status
// below 300.
func (s *Server) Count(method, pathPart string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method && strings.Contains(r.Path, pathPart) && r.Status < 300 {
			n++
		}
	}
	return n
}

// Files returns the files at the head of branch of a model repository (LFS files resolved to
// their content); nil when there is no such repository or branch.
func (s *Server) Files(repoID, branch string) map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos["model:"+repoID]
	if r == nil || r.branches[branch] == "" {
		return nil
	}
	out := map[string][]byte{}
	for p, b := range r.trees[r.branches[branch]] {
		out[p] = s.content(b)
	}
	return out
}

// Log returns the commit summaries of a model repository's branch, oldest first.
func (s *Server) Log(repoID, branch string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.repos["model:"+repoID]; r != nil {
		return slices.Clone(r.log[branch])
	}
	return nil
}

// Commits returns the number of commits made through the API so far.
func (s *Server) Commits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits
}

// Private reports whether a model repository was created private.
func (s *Server) Private(repoID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos["model:"+repoID]
	return r != nil && r.private
}

func (s *Server) content(b blob) []byte {
	if b.lfsOID != "" {
		return s.lfs[b.lfsOID]
	}
	return b.data
}

// statusWriter records the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

var (
	apiRepoPath = regexp.MustCompile(`^/api/(models|datasets)/([^/]+/[^/]+)/(preupload|commit|revision|branch)/(.+)$`)
	batchPath   = regexp.MustCompile(`^/(datasets/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch$`)
	resolvePath = regexp.MustCompile(`^/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	s.mu.Lock()
	defer func() {
		s.requests = append(s.requests, Request{r.Method, r.URL.Path, sw.status})
		s.mu.Unlock()
	}()
	for _, f := range s.faults {
		if f.times > 0 && f.method == r.Method && strings.Contains(r.URL.Path, f.pathPart) {
			f.times--
			if f.retryAfter != "" {
				sw.Header().Set("Retry-After", f.retryAfter)
			}
			hubError(sw, f.status, "injected failure")
			return
		}
	}
	p := r.URL.EscapedPath()
	switch {
	case p == "/api/whoami-v2" && r.Method == http.MethodGet:
		if !s.authorized(sw, r) {
			return
		}
		writeJSON(sw, map[string]any{"type": "user", "name": s.User})
	case p == "/api/repos/create" && r.Method == http.MethodPost:
		s.createRepo(sw, r)
	case apiRepoPath.MatchString(p):
		m := apiRepoPath.FindStringSubmatch(p)
		rev, err := unescape(m[4])
		if err != nil {
			hubError(sw, http.StatusBadRequest, "bad revision")
			return
		}
		s.repoAPI(sw, r, strings.TrimSuffix(m[1], "s"), m[2], m[3], rev)
	case batchPath.MatchString(p) && r.Method == http.MethodPost:
		m := batchPath.FindStringSubmatch(p)
		kind := "model"
		if m[1] != "" {
			kind = "dataset"
		}
		s.batch(sw, r, kind, m[2])
	case strings.HasPrefix(p, "/lfs/"):
		s.storage(sw, r, strings.Split(strings.TrimPrefix(p, "/lfs/"), "/"))
	case resolvePath.MatchString(p) && r.Method == http.MethodGet:
		m := resolvePath.FindStringSubmatch(p)
		kind := "model"
		if m[1] != "" {
			kind = "dataset"
		}
		name, err := unescape(m[4])
		if err != nil {
			http.NotFound(sw, r)
			return
		}
		s.resolve(sw, r, kind, m[2], m[3], name)
	default:
		hubError(sw, http.StatusNotFound, "no such endpoint")
	}
}

func unescape(s string) (string, error) {
	return url.PathUnescape(s)
}

// authorized checks the bearer token (401 otherwise).
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		hubError(w, http.StatusUnauthorized, "Invalid credentials in Authorization header")
		return false
	}
	return true
}

func (s *Server) createRepo(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r) {
		return
	}
	var req struct {
		Name         string  `json:"name"`
		Organization *string `json:"organization"`
		Type         string  `json:"type"`
		Visibility   string  `json:"visibility"`
		Private      *bool   `json:"private"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" || strings.Contains(req.Name, "/") {
		hubError(w, http.StatusBadRequest, "malformed repository creation request")
		return
	}
	if req.Type == "" {
		req.Type = "model"
	}
	if req.Type != "model" && req.Type != "dataset" {
		hubError(w, http.StatusBadRequest, "unknown repository type "+req.Type)
		return
	}
	ns := s.User
	if req.Organization != nil {
		ns = *req.Organization
	}
	if ns != s.User {
		hubError(w, http.StatusForbidden, "You don't have the rights to create a model under the namespace \""+ns+"\"")
		return
	}
	id := ns + "/" + req.Name
	u := s.URL + "/" + id
	if req.Type == "dataset" {
		u = s.URL + "/datasets/" + id
	}
	key := req.Type + ":" + id
	if s.repos[key] != nil {
		msg := "You already created this " + req.Type + " repo"
		w.Header().Set("X-Error-Message", msg)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(map[string]string{"error": msg, "url": u})
		return
	}
	init := map[string]blob{".gitattributes": {data: []byte(gitattributes)}}
	sha := s.newCommit()
	s.repos[key] = &repo{private: req.Visibility == "private" || (req.Private != nil && *req.Private),
		branches: map[string]string{"main": sha}, trees: map[string]map[string]blob{sha: init}, log: map[string][]string{"main": {"initial commit"}}}
	writeJSON(w, map[string]string{"url": u, "name": id})
}

// Seed puts files (path → content; paths may name folders) on branch of the public repository id
// of kind ("model" or "dataset"), in any namespace, as its owner would have pushed them: what a
// test then downloads. Each call is one commit whose tree is files alone (and .gitattributes):
// what an earlier Seed put on the branch is gone. Files are stored inline, not in LFS.
func (s *Server) Seed(kind, id, branch string, files map[string][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := kind + ":" + id
	rp := s.repos[key]
	if rp == nil {
		rp = &repo{branches: map[string]string{}, trees: map[string]map[string]blob{}, log: map[string][]string{}}
		s.repos[key] = rp
	}
	tree := map[string]blob{".gitattributes": {data: []byte(gitattributes)}}
	for p, data := range files {
		tree[p] = blob{data: data}
	}
	sha := s.newCommit()
	rp.trees[sha] = tree
	rp.branches[branch] = sha
	rp.log[branch] = append(rp.log[branch], "seed")
}

func (s *Server) newCommit() string {
	s.commits++
	h := sha1.Sum([]byte(fmt.Sprintf("commit %d", s.commits)))
	return hex.EncodeToString(h[:])
}

// repoFor finds a repository the request may read (or write), answering 401/403/404 like the Hub.
func (s *Server) repoFor(w http.ResponseWriter, r *http.Request, kind, id string, write bool) *repo {
	rp := s.repos[kind+":"+id]
	authed := r.Header.Get("Authorization") == "Bearer "+s.Token
	if rp == nil || (rp.private && !authed) {
		if !authed && r.Header.Get("Authorization") != "" {
			hubError(w, http.StatusUnauthorized, "Invalid credentials in Authorization header")
			return nil
		}
		w.Header().Set("X-Error-Code", "RepoNotFound")
		hubError(w, http.StatusNotFound, "Repository not found")
		return nil
	}
	if write {
		if !authed {
			hubError(w, http.StatusUnauthorized, "Invalid credentials in Authorization header")
			return nil
		}
		if !strings.HasPrefix(id, s.User+"/") {
			hubError(w, http.StatusForbidden, "You don't have the rights to write to "+id)
			return nil
		}
	}
	return rp
}

func (s *Server) repoAPI(w http.ResponseWriter, r *http.Request, kind, id, endpoint, rev string) {
	write := endpoint != "revision"
	if (endpoint == "revision") != (r.Method == http.MethodGet) {
		hubError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	rp := s.repoFor(w, r, kind, id, write)
	if rp == nil {
		return
	}
	if endpoint == "branch" {
		if rp.branches[rev] != "" {
			hubError(w, http.StatusConflict, "Reference already exists")
			return
		}
		rp.branches[rev] = rp.branches["main"]
		rp.log[rev] = slices.Clone(rp.log["main"])
		writeJSON(w, map[string]any{})
		return
	}
	head := rp.branches[rev]
	if head == "" {
		if _, ok := rp.trees[rev]; ok && endpoint == "revision" {
			head = rev
		} else {
			w.Header().Set("X-Error-Code", "RevisionNotFound")
			hubError(w, http.StatusNotFound, "Invalid rev id: "+rev)
			return
		}
	}
	switch endpoint {
	case "revision":
		var sib []map[string]string
		for _, p := range sortedPaths(rp.trees[head]) {
			sib = append(sib, map[string]string{"rfilename": p})
		}
		writeJSON(w, map[string]any{"id": id, "sha": head, "private": rp.private, "siblings": sib})
	case "preupload":
		s.preupload(w, r, rp.trees[head])
	case "commit":
		s.commit(w, r, kind, id, rp, rev)
	}
}

func sortedPaths(tree map[string]blob) []string {
	var out []string
	for p := range tree {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func (s *Server) preupload(w http.ResponseWriter, r *http.Request, tree map[string]blob) {
	var req struct {
		Files []struct {
			Path   string `json:"path"`
			Sample string `json:"sample"`
			Size   *int64 `json:"size"`
		} `json:"files"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Files) == 0 || len(req.Files) > 256 {
		hubError(w, http.StatusBadRequest, "malformed preupload request (1 to 256 files)")
		return
	}
	var out []map[string]any
	for _, f := range req.Files {
		sample, err := base64.StdEncoding.DecodeString(f.Sample)
		if err != nil || f.Size == nil || len(sample) > 512 || !validPath(f.Path) {
			hubError(w, http.StatusBadRequest, "malformed preupload entry for "+strconv.Quote(f.Path))
			return
		}
		mode := "regular"
		if s.needsLFS(f.Path, *f.Size, sample) {
			mode = "lfs"
		}
		entry := map[string]any{"path": f.Path, "uploadMode": mode, "shouldIgnore": false, "oid": nil}
		if b, ok := tree[f.Path]; ok {
			if b.lfsOID != "" {
				entry["oid"] = b.lfsOID
			} else {
				entry["oid"] = gitBlobID(b.data)
			}
		}
		out = append(out, entry)
	}
	writeJSON(w, map[string]any{"files": out})
}

// needsLFS is the Hub's rule: LFS for files matching the repository's LFS patterns, binary
// files, and files from the size threshold on.
func (s *Server) needsLFS(p string, size int64, sample []byte) bool {
	if size == 0 {
		return false
	}
	if size >= s.LFSThreshold || bytes.IndexByte(sample, 0) >= 0 {
		return true
	}
	for _, pat := range lfsPatterns {
		if ok, _ := path.Match(pat, path.Base(p)); ok {
			return true
		}
	}
	return false
}

var lfsPatterns = []string{"*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.mlmodel",
	"*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth",
	"*.rar", "*.safetensors", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*"}

var gitattributes = func() string {
	var b strings.Builder
	for _, p := range lfsPatterns {
		fmt.Fprintf(&b, "%s filter=lfs diff=lfs merge=lfs -text\n", p)
	}
	return b.String()
}()

func validPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." || part == ".git" {
			return false
		}
	}
	return true
}

func gitBlobID(data []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

var oidPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s *Server) batch(w http.ResponseWriter, r *http.Request, kind, id string) {
	if r.Header.Get("Accept") != "application/vnd.git-lfs+json" || r.Header.Get("Content-Type") != "application/vnd.git-lfs+json" {
		hubError(w, http.StatusNotAcceptable, "the LFS batch API wants application/vnd.git-lfs+json")
		return
	}
	if s.repoFor(w, r, kind, id, true) == nil {
		return
	}
	var req struct {
		Operation string   `json:"operation"`
		Transfers []string `json:"transfers"`
		HashAlgo  string   `json:"hash_algo"`
		Objects   []struct {
			OID  string `json:"oid"`
			Size *int64 `json:"size"`
		} `json:"objects"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Operation != "upload" || req.HashAlgo != "sha256" ||
		!slices.Contains(req.Transfers, "basic") || len(req.Objects) == 0 {
		hubError(w, http.StatusUnprocessableEntity, "malformed LFS batch request")
		return
	}
	transfer := "basic"
	var objects []map[string]any
	for _, o := range req.Objects {
		if !oidPattern.MatchString(o.OID) || o.Size == nil || *o.Size <= 0 {
			hubError(w, http.StatusUnprocessableEntity, "malformed LFS object "+strconv.Quote(o.OID))
			return
		}
		obj := map[string]any{"oid": o.OID, "size": *o.Size, "authenticated": true}
		if _, have := s.lfs[o.OID]; !have {
			verify := map[string]any{"href": s.URL + "/lfs/verify", "header": map[string]string{}}
			if *o.Size >= s.MultipartThreshold && slices.Contains(req.Transfers, "multipart") {
				transfer = "multipart"
				header := map[string]string{"chunk_size": strconv.FormatInt(s.PartSize, 10)}
				for n := int64(1); (n-1)*s.PartSize < *o.Size; n++ {
					header[strconv.FormatInt(n, 10)] = fmt.Sprintf("%s/lfs/part/%s/%d", s.URL, o.OID, n)
				}
				obj["actions"] = map[string]any{"upload": map[string]any{"href": s.URL + "/lfs/complete/" + o.OID, "header": header}, "verify": verify}
			} else {
				obj["actions"] = map[string]any{"upload": map[string]any{"href": s.URL + "/lfs/upload/" + o.OID + "/" + strconv.FormatInt(*o.Size, 10)}, "verify": verify}
			}
		}
		objects = append(objects, obj)
	}
	w.Header().Set("Content-Type", "application/vnd.git-lfs+json")
	json.NewEncoder(w).Encode(map[string]any{"transfer": transfer, "objects": objects})
}

// storage is the pre-signed object store: whole uploads, parts, completion and verification.
func (s *Server) storage(w http.ResponseWriter, r *http.Request, parts []string) {
	if parts[0] == "cdn" && len(parts) == 2 && r.Method == http.MethodGet {
		s.cdn(w, parts[1])
		return
	}
	if r.Header.Get("Authorization") != "" && parts[0] != "verify" {
		hubError(w, http.StatusBadRequest, "pre-signed storage URLs take no Authorization header")
		return
	}
	switch {
	case parts[0] == "upload" && len(parts) == 3 && r.Method == http.MethodPut:
		data, _ := io.ReadAll(r.Body)
		if strconv.Itoa(len(data)) != parts[2] || sha256Hex(data) != parts[1] {
			hubError(w, http.StatusBadRequest, "uploaded bytes do not match the object's size and sha256")
			return
		}
		s.lfs[parts[1]] = data
	case parts[0] == "part" && len(parts) == 3 && r.Method == http.MethodPut:
		n, err := strconv.Atoi(parts[2])
		if err != nil {
			hubError(w, http.StatusBadRequest, "bad part number")
			return
		}
		data, _ := io.ReadAll(r.Body)
		if int64(len(data)) > s.PartSize || len(data) == 0 {
			hubError(w, http.StatusBadRequest, "part size outside (0, chunk_size]")
			return
		}
		if s.parts[parts[1]] == nil {
			s.parts[parts[1]] = map[int][]byte{}
		}
		s.parts[parts[1]][n] = data
		w.Header().Set("ETag", `"`+sha256Hex(data)[:32]+`"`)
	case parts[0] == "complete" && len(parts) == 2 && r.Method == http.MethodPost:
		var req struct {
			OID   string `json:"oid"`
			Parts []struct {
				PartNumber int    `json:"partNumber"`
				ETag       string `json:"etag"`
			} `json:"parts"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.OID != parts[1] || len(req.Parts) == 0 {
			hubError(w, http.StatusBadRequest, "malformed multipart completion")
			return
		}
		var all []byte
		for i, p := range req.Parts {
			data, ok := s.parts[req.OID][p.PartNumber]
			if !ok || p.PartNumber != i+1 || p.ETag != `"`+sha256Hex(data)[:32]+`"` {
				hubError(w, http.StatusBadRequest, fmt.Sprintf("part %d: missing, out of order or wrong ETag", p.PartNumber))
				return
			}
			all = append(all, data...)
		}
		if sha256Hex(all) != req.OID {
			hubError(w, http.StatusBadRequest, "assembled parts do not match the object's sha256")
			return
		}
		s.lfs[req.OID] = all
		delete(s.parts, req.OID)
	case parts[0] == "verify" && r.Method == http.MethodPost:
		if !s.authorized(w, r) {
			return
		}
		var req struct {
			OID  string `json:"oid"`
			Size int64  `json:"size"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			hubError(w, http.StatusBadRequest, "malformed verify request")
			return
		}
		if data, ok := s.lfs[req.OID]; !ok || int64(len(data)) != req.Size {
			hubError(w, http.StatusNotFound, "object not found")
			return
		}
	default:
		hubError(w, http.StatusNotFound, "no such storage endpoint")
		return
	}
	w.WriteHeader(http.StatusOK)
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func (s *Server) commit(w http.ResponseWriter, r *http.Request, kind, id string, rp *repo, branch string) {
	if r.Header.Get("Content-Type") != "application/x-ndjson" {
		hubError(w, http.StatusBadRequest, "a commit is application/x-ndjson")
		return
	}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, s.MaxCommitBytes+1))
	if int64(len(raw)) > s.MaxCommitBytes {
		hubError(w, http.StatusRequestEntityTooLarge, "commit payload too large")
		return
	}
	tree := map[string]blob{}
	for p, b := range rp.trees[rp.branches[branch]] {
		tree[p] = b
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), len(raw)+1)
	first := true
	var summary string
	for sc.Scan() {
		var line struct {
			Key   string          `json:"key"`
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			hubError(w, http.StatusBadRequest, "commit line is not JSON")
			return
		}
		if first != (line.Key == "header") {
			hubError(w, http.StatusBadRequest, "a commit starts with exactly one header line")
			return
		}
		var v struct {
			Summary  *string `json:"summary"`
			Path     string  `json:"path"`
			Content  string  `json:"content"`
			Encoding string  `json:"encoding"`
			Algo     string  `json:"algo"`
			OID      string  `json:"oid"`
			Size     *int64  `json:"size"`
		}
		if err := json.Unmarshal(line.Value, &v); err != nil {
			hubError(w, http.StatusBadRequest, "malformed commit line "+line.Key)
			return
		}
		switch line.Key {
		case "header":
			if v.Summary == nil || *v.Summary == "" {
				hubError(w, http.StatusBadRequest, "the commit summary is empty")
				return
			}
			summary = *v.Summary
		case "file":
			data, err := base64.StdEncoding.DecodeString(v.Content)
			if err != nil || v.Encoding != "base64" || !validPath(v.Path) {
				hubError(w, http.StatusBadRequest, "malformed file line for "+strconv.Quote(v.Path))
				return
			}
			if s.needsLFS(v.Path, int64(len(data)), data[:min(len(data), 512)]) {
				hubError(w, http.StatusBadRequest, "Your push was rejected because it contains binary files or files larger than the LFS threshold: "+
					v.Path+". Please use https://git-lfs.github.com/ to store them.")
				return
			}
			tree[v.Path] = blob{data: data}
		case "lfsFile":
			if !validPath(v.Path) || v.Algo != "sha256" || !oidPattern.MatchString(v.OID) || v.Size == nil {
				hubError(w, http.StatusBadRequest, "malformed lfsFile line for "+strconv.Quote(v.Path))
				return
			}
			if data, ok := s.lfs[v.OID]; !ok || int64(len(data)) != *v.Size {
				hubError(w, http.StatusUnprocessableEntity, "LFS object "+v.OID+" of "+v.Path+" was not uploaded")
				return
			}
			tree[v.Path] = blob{lfsOID: v.OID}
		case "deletedFile":
			delete(tree, v.Path)
		default:
			hubError(w, http.StatusBadRequest, "unknown commit operation "+strconv.Quote(line.Key))
			return
		}
		first = false
	}
	if first {
		hubError(w, http.StatusBadRequest, "empty commit")
		return
	}
	sha := s.newCommit()
	rp.trees[sha] = tree
	rp.branches[branch] = sha
	rp.log[branch] = append(rp.log[branch], summary)
	prefix := s.URL + "/"
	if kind == "dataset" {
		prefix += "datasets/"
	}
	writeJSON(w, map[string]any{"success": true, "commitOid": sha, "commitUrl": prefix + id + "/commit/" + sha})
}

func (s *Server) resolve(w http.ResponseWriter, r *http.Request, kind, id, rev, name string) {
	rp := s.repoFor(w, r, kind, id, false)
	if rp == nil {
		return
	}
	sha := rp.branches[rev]
	if sha == "" {
		sha = rev
	}
	tree, ok := rp.trees[sha]
	if !ok {
		w.Header().Set("X-Error-Code", "RevisionNotFound")
		hubError(w, http.StatusNotFound, "revision not found")
		return
	}
	b, ok := tree[name]
	if !ok {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		hubError(w, http.StatusNotFound, "entry not found")
		return
	}
	if b.lfsOID != "" {
		w.Header().Set("X-Linked-Etag", `"`+b.lfsOID+`"`)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(s.lfs[b.lfsOID])))
		w.Header().Set("ETag", `"`+gitBlobID([]byte(b.lfsOID))+`"`)
		w.Header().Set("Location", s.URL+"/lfs/cdn/"+b.lfsOID)
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+gitBlobID(b.data)+`"`)
	w.Write(b.data)
}

// cdn serves LFS objects (GET /lfs/cdn/<oid>), where resolve redirects.
func (s *Server) cdn(w http.ResponseWriter, oid string) {
	data, ok := s.lfs[oid]
	if !ok {
		http.Error(w, "no such object", http.StatusNotFound)
		return
	}
	w.Write(data)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// hubError answers like the Hub: the message in X-Error-Message and in a JSON body.
func hubError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
