package memory_test

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"

	"handbook/lora"
	"handbook/memory"
	"handbook/model"
)

// Estimate the seed's LoRA run: Mistral-7B, LoRA r 16 on every linear layer, a bf16 base, bf16
// mixed precision, gradient checkpointing, one 2048-token row. memory.Measure compiles the same
// step on the XLA CPU plugin for XLA's own figure (`handbook estimate --xla`).
func Example() {
	cfg, err := model.LoadConfig("../zero/testdata/mistral7b_config.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	c := memory.Config{Model: cfg, Task: memory.SFT, Weights: dtypes.BFloat16, Autocast: true, Devices: 1,
		LoRA: &lora.Config{R: 16, Alpha: 32, TargetModules: []string{"all-linear"}}, Batch: 1, Seq: 2048, GradientCheckpointing: true}
	mem, counts, err := memory.Estimate(c)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%.1fM trainable; weights %.2f GiB; total %.1f GiB: fits 24 GiB: %v\n",
		float64(counts.Trainable)/1e6, float64(mem.Parameters)/(1<<30), float64(mem.Total())/(1<<30), mem.Total() <= 24<<30)
	// Output: 41.9M trainable; weights 13.65 GiB; total 17.4 GiB: fits 24 GiB: true
}
