package backend_test

import (
	"fmt"
	"os"

	"handbook/backend"
)

func Example() {
	os.Setenv(backend.EnvVar, "go")
	b, sel, err := backend.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Finalize()
	fmt.Println(sel)
	// Output: backend go (GOMLX_BACKEND is set)
}
