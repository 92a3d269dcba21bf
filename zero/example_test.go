package zero_test

import (
	"fmt"

	"handbook/model"
	"handbook/zero"
)

// Estimate the memory of full fine-tuning Mistral-7B with ZeRO-3 over 8 GPUs: (2+2+12)Ψ/8 bytes of
// model states per device.
func Example() {
	cfg, err := model.LoadConfig("testdata/mistral7b_config.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	mem, counts, err := zero.Estimate(cfg, zero.EstimateOptions{Stage: zero.Stage3, Devices: 8})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d parameters\n", counts.Total)
	fmt.Printf("parameters %.2f GB, gradients %.2f GB, optimizer %.2f GB per device\n",
		float64(mem.Parameters)/1e9, float64(mem.Gradients)/1e9, float64(mem.Optimizer)/1e9)

	s, warnings, err := zero.FromAccelerateConfig("testdata/zero3.yaml")
	fmt.Println(s.Stage, s.Devices, len(warnings), err)
	// Output:
	// 7241732096 parameters
	// parameters 1.81 GB, gradients 1.81 GB, optimizer 10.86 GB per device
	// 3 8 0 <nil>
}
