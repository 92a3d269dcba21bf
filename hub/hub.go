package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// RepoType is the kind of Hub repository.
type RepoType string

// The repository kinds handbook downloads from.
const (
	Model   RepoType = "model"
	Dataset RepoType = "dataset"
)

// Client downloads repository files into the Hugging Face cache and uploads folders to
// repositories. The zero value is not usable;
// FromEnv returns one configured as huggingface_hub would be.
type Client struct {
	// Endpoint is the Hub's base URL (HF_ENDPOINT, default https://huggingface.co).
	Endpoint string
	// Token is sent as a bearer token when set (HF_TOKEN, else the file $HF_HOME/token).
	Token string
	// CacheDir is the hub cache (HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub).
	CacheDir string
	// Offline serves only what is cached (HF_HUB_OFFLINE=1).
	Offline bool
	// HTTP is the client used for requests (http.DefaultClient when nil).
	HTTP *http.Client
	// Retry is how uploads retry transient failures (zero: huggingface_hub's backoff).
	Retry RetryPolicy
}

// FromEnv configures a Client from the environment variables huggingface_hub reads.
func FromEnv() (*Client, error) {
	home := os.Getenv("HF_HOME")
	if home == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				return nil, fmt.Errorf("hub: no HF_HOME and no home directory: %w", err)
			}
			base = filepath.Join(h, ".cache")
		}
		home = filepath.Join(base, "huggingface")
	}
	c := &Client{Endpoint: "https://huggingface.co", CacheDir: filepath.Join(home, "hub"), Token: os.Getenv("HF_TOKEN")}
	if e := os.Getenv("HF_ENDPOINT"); e != "" {
		c.Endpoint = strings.TrimRight(e, "/")
	}
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		c.CacheDir = d
	}
	if c.Token == "" {
		if b, err := os.ReadFile(filepath.Join(home, "token")); err == nil {
			c.Token = strings.TrimSpace(string(b))
		}
	}
	switch strings.ToLower(os.Getenv("HF_HUB_OFFLINE")) {
	case "1", "true", "yes", "on":
		c.Offline = true
	}
	return c, nil
}

var repoIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$`)

// IsRepoID reports whether s has the shape of a Hub repository id ("org/name" or "name").
func IsRepoID(s string) bool {
	return repoIDPattern.MatchString(s) && !strings.Contains(s, "--") && !strings.HasSuffix(s, ".")
}

// repoDir is the repository's folder in the cache, as huggingface_hub names it.
func (c *Client) repoDir(kind RepoType, repo string) string {
	return filepath.Join(c.CacheDir, string(kind)+"s--"+strings.ReplaceAll(repo, "/", "--"))
}

func (c *Client) urlPrefix(kind RepoType) string {
	if kind == Dataset {
		return c.Endpoint + "/datasets/"
	}
	return c.Endpoint + "/"
}

// Snapshot makes the files of repo at revision ("" means "main") whose names match one of
// patterns (path.Match globs on the file name or the whole path; none means every file) present
// in the cache, and returns the snapshot directory holding them. Offline, it returns the cached
// snapshot of that revision.
func (c *Client) Snapshot(ctx context.Context, kind RepoType, repo, revision string, patterns ...string) (string, error) {
	if revision == "" {
		revision = "main"
	}
	if !IsRepoID(repo) {
		return "", fmt.Errorf("hub: %q is not a repository id", repo)
	}
	if c.Offline {
		return c.cachedSnapshot(kind, repo, revision)
	}
	var info struct {
		SHA      string `json:"sha"`
		Siblings []struct {
			RFilename string `json:"rfilename"`
		} `json:"siblings"`
	}
	api := fmt.Sprintf("%s/api/%ss/%s/revision/%s", c.Endpoint, kind, repo, url.PathEscape(revision))
	if err := c.getJSON(ctx, api, &info); err != nil {
		return "", fmt.Errorf("hub: %s %s@%s: %w", kind, repo, revision, err)
	}
	if info.SHA == "" {
		return "", fmt.Errorf("hub: %s %s@%s: the API named no commit", kind, repo, revision)
	}
	for _, s := range info.Siblings {
		if !matches(s.RFilename, patterns) {
			continue
		}
		if _, err := c.download(ctx, kind, repo, info.SHA, s.RFilename); err != nil {
			return "", err
		}
	}
	if err := c.writeRef(kind, repo, revision, info.SHA); err != nil {
		return "", err
	}
	dir := filepath.Join(c.repoDir(kind, repo), "snapshots", info.SHA)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	return dir, nil
}

func matches(name string, patterns []string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
		if ok, _ := path.Match(p, path.Base(name)); ok {
			return true
		}
	}
	return false
}

var commitPattern = regexp.MustCompile(`^[0-9a-f]{40}$`)

func (c *Client) cachedSnapshot(kind RepoType, repo, revision string) (string, error) {
	sha := revision
	if !commitPattern.MatchString(revision) {
		b, err := os.ReadFile(filepath.Join(c.repoDir(kind, repo), "refs", revision))
		if err != nil {
			return "", fmt.Errorf("hub: offline (HF_HUB_OFFLINE) and %s %s@%s is not in the cache %s", kind, repo, revision, c.CacheDir)
		}
		sha = strings.TrimSpace(string(b))
	}
	dir := filepath.Join(c.repoDir(kind, repo), "snapshots", sha)
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("hub: offline (HF_HUB_OFFLINE) and %s %s@%s is not in the cache: %w", kind, repo, revision, err)
	}
	return dir, nil
}

func (c *Client) writeRef(kind RepoType, repo, revision, sha string) error {
	if revision == sha {
		return nil
	}
	ref := filepath.Join(c.repoDir(kind, repo), "refs", revision)
	if err := os.MkdirAll(filepath.Dir(ref), 0o755); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	if err := os.WriteFile(ref, []byte(sha), 0o644); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

// download fetches one file of the commit sha into blobs/ (named by its ETag, as huggingface_hub
// does) and links it from snapshots/sha/; a file already in the snapshot is not fetched again.
func (c *Client) download(ctx context.Context, kind RepoType, repo, sha, name string) (string, error) {
	if strings.Contains(name, "..") || path.IsAbs(name) {
		return "", fmt.Errorf("hub: %s %s: unsafe file name %q", kind, repo, name)
	}
	dir := c.repoDir(kind, repo)
	link := filepath.Join(dir, "snapshots", sha, filepath.FromSlash(name))
	if _, err := os.Stat(link); err == nil {
		return link, nil
	}
	resp, etag, err := c.resolve(ctx, c.urlPrefix(kind)+repo+"/resolve/"+sha+"/"+name)
	if err != nil {
		return "", fmt.Errorf("hub: %s %s: %s: %w", kind, repo, name, err)
	}
	defer resp.Body.Close()
	if etag == "" || strings.ContainsAny(etag, `/\`) {
		etag = sha + "-" + strings.ReplaceAll(name, "/", "--") // no usable ETag: one blob per file and commit
	}
	blob := filepath.Join(dir, "blobs", etag)
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	tmp := blob + ".incomplete"
	f, err := os.Create(tmp)
	if err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	_, copyErr := io.Copy(f, resp.Body)
	closeErr := f.Close()
	if err := errors.Join(copyErr, closeErr); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("hub: %s %s: %s: %w", kind, repo, name, err)
	}
	if err := os.Rename(tmp, blob); err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	rel, err := filepath.Rel(filepath.Dir(link), blob)
	if err != nil {
		return "", fmt.Errorf("hub: %w", err)
	}
	if err := os.Symlink(rel, link); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("hub: %w", err)
	}
	return link, nil
}

// resolve GETs a resolve/ URL and returns the file's response and ETag. The Hub answers large
// files with a redirect to a CDN that carries the blob's ETag in X-Linked-Etag, so the first
// response is read before the redirect is followed (without the token when it leaves the host).
func (c *Client) resolve(ctx context.Context, u string) (*http.Response, string, error) {
	req, err := c.request(ctx, u)
	if err != nil {
		return nil, "", err
	}
	noRedirect := *c.http()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Do(req)
	if err != nil {
		return nil, "", err
	}
	etag := etagOf(resp.Header)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		loc, err := resp.Location()
		resp.Body.Close()
		if err != nil {
			return nil, "", err
		}
		next, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
		if err != nil {
			return nil, "", err
		}
		if loc.Host == req.URL.Host && c.Token != "" {
			next.Header.Set("Authorization", "Bearer "+c.Token)
		}
		if resp, err = c.http().Do(next); err != nil {
			return nil, "", err
		}
		if etag == "" {
			etag = etagOf(resp.Header)
		}
	}
	if err := statusError(resp); err != nil {
		resp.Body.Close()
		return nil, "", err
	}
	return resp, etag, nil
}

func etagOf(h http.Header) string {
	e := h.Get("X-Linked-Etag")
	if e == "" {
		e = h.Get("ETag")
	}
	return strings.Trim(strings.TrimPrefix(e, "W/"), `"`)
}

func (c *Client) request(ctx context.Context, u string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("User-Agent", "handbook-go")
	return req, nil
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) getJSON(ctx context.Context, u string, v any) error {
	req, err := c.request(ctx, u)
	if err != nil {
		return err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := statusError(resp); err != nil {
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("reading %s: %w", u, err)
	}
	return nil
}

// statusError explains a failed response the way the Hub's errors read.
func statusError(resp *http.Response) error {
	switch {
	case resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: the repository is gated or private (set HF_TOKEN)", resp.Status)
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: no such repository, revision or file", resp.Status)
	}
	return fmt.Errorf("%s", resp.Status)
}
