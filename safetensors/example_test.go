package safetensors_test

import (
	"fmt"
	"os"
	"path/filepath"

	"handbook/safetensors"
)

// Example saves a float32 weight and a bfloat16 copy of it, then reads both
// back by name.
func Example() {
	dir, err := os.MkdirTemp("", "safetensors-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	weights := []float32{0.5, -1, 3.14159, 1e-3}
	_, err = safetensors.SaveCheckpoint(dir, []safetensors.Source{
		safetensors.Float32Source("model.norm.weight", []int{4}, weights),
		safetensors.BFloat16Source("lm_head.weight", []int{2, 2}, weights),
	}, safetensors.SaveOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}

	ckpt, err := safetensors.OpenDir(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ckpt.Close()
	fmt.Println(filepath.Base(ckpt.Files()[0]), ckpt.Metadata())
	for _, name := range ckpt.Names() {
		t, err := ckpt.Tensor(name)
		if err != nil {
			fmt.Println(err)
			return
		}
		values, err := t.Float32s()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(name, t.DType, t.Shape, values)
	}
	// Output:
	// model.safetensors map[format:pt]
	// lm_head.weight BF16 [2 2] [0.5 -1 3.140625 0.0009994507]
	// model.norm.weight F32 [4] [0.5 -1 3.14159 0.001]
}
