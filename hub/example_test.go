package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"

	"handbook/hub"
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
