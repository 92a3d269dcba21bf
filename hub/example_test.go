package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"

	"handbook/hub"
	"handbook/hub/hubtest"
)

// Snapshot a model repository's config into a cache; here against a stand-in for the Hub.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/models/org/tiny/revision/main" {
			fmt.Fprint(w, `{"sha":"0123456789abcdef0123456789abcdef01234567","siblings":[{"rfilename":"config.json"}]}`)
			return
		}
		fmt.Fprint(w, `{"model_type":"llama"}`)
	}))
	defer srv.Close()
	cache, _ := os.MkdirTemp("", "hub")
	defer os.RemoveAll(cache)

	c := &hub.Client{Endpoint: srv.URL, CacheDir: cache}
	dir, err := c.Snapshot(context.Background(), hub.Model, "org/tiny", "main", "*.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	config, _ := os.ReadFile(dir + "/config.json")
	fmt.Println(string(config))
	// Output: {"model_type":"llama"}
}

// Push an output folder to a new repository under the token's user; here against the local Hub
// of package hubtest.
func ExampleClient_UploadFolder() {
	s := hubtest.New("alice", "hf_token")
	defer s.Close()
	out, _ := os.MkdirTemp("", "out")
	defer os.RemoveAll(out)
	os.WriteFile(out+"/config.json", []byte(`{"model_type":"llama"}`), 0o644)
	os.WriteFile(out+"/model.safetensors", []byte("weights"), 0o644)

	c := &hub.Client{Endpoint: s.URL, Token: "hf_token"}
	ctx := context.Background()
	repo, err := c.CreateRepo(ctx, hub.Model, "tiny-sft", false)
	if err != nil {
		fmt.Println(err)
		return
	}
	info, err := c.UploadFolder(ctx, repo, out, hub.UploadOptions{Message: "End of training"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(repo, info.Committed, "LFS:", info.LFSUploaded)
	// Output: alice/tiny-sft [config.json model.safetensors] LFS: [model.safetensors]
}
