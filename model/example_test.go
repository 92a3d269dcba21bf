package model_test

import (
	"context"
	"fmt"
	"os"

	"handbook/backend"
	"handbook/model"
)

// Load a Hugging Face model directory and continue a prompt greedily.
func Example() {
	os.Setenv(backend.EnvVar, "go")
	b, _, err := backend.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Finalize()
	m, err := model.Load(b, "../testdata/models/llama_gqa", model.LoadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Finalize()
	fmt.Println(m.Config.ModelType, m.Config.NumHiddenLayers, "layers")
	out, err := m.Generate(context.Background(), [][]int32{{1, 13, 20}}, model.GenerateOptions{MaxNewTokens: 4, EOSTokenIDs: []int{}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(out[0]), "new tokens")
	// Output:
	// llama 2 layers
	// 4 new tokens
}
