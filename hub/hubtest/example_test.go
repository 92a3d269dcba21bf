package hubtest_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"handbook/hub"
	"handbook/hub/hubtest"
)

// Make the local Hub answer the first pre-upload check with 503 and check that an upload retries it: the
// refused request is recorded with its status, and the files arrive once.
func ExampleServer_Fail() {
	s := hubtest.New("alice", "hf_token")
	defer s.Close()
	out, err := os.MkdirTemp("", "out")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(out)
	if err := os.WriteFile(filepath.Join(out, "config.json"), []byte(`{"model_type":"llama"}`), 0o644); err != nil {
		fmt.Println(err)
		return
	}

	s.Fail(http.MethodPost, "/preupload/", http.StatusServiceUnavailable, 1, "")
	c := &hub.Client{Endpoint: s.URL, Token: "hf_token", Retry: hub.RetryPolicy{BaseWait: time.Millisecond}}
	ctx := context.Background()
	repo, err := c.CreateRepo(ctx, hub.Model, "tiny-sft", false)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := c.UploadFolder(ctx, repo, out, hub.UploadOptions{Message: "End of training"}); err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range s.Requests() {
		if r.Method == http.MethodPost {
			fmt.Println(r.Path, r.Status)
		}
	}
	fmt.Println(string(s.Files(repo, "main")["config.json"]))
	// Output:
	// /api/repos/create 200
	// /api/models/alice/tiny-sft/preupload/main 503
	// /api/models/alice/tiny-sft/preupload/main 200
	// /api/models/alice/tiny-sft/commit/main 200
	// {"model_type":"llama"}
}
