package zero_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"handbook/backend"
	"handbook/data"
	"handbook/model"
	"handbook/sft"
	"handbook/train"
	"handbook/zero"
)

// Estimate the memory of full fine-tuning Mistral-7B (bf16 weights) with ZeRO-3 over 8 GPUs:
// (2+4+12)Ψ/8 bytes of model states per device — the bf16 copy, a float32 gradient, and the
// float32 master and AdamW moments.
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
	// parameters 1.81 GB, gradients 3.62 GB, optimizer 10.86 GB per device
	// 3 8 0 <nil>
}

// Fine-tune a small Llama in full with ZeRO stage 3 over every device of the backend: parameters,
// gradients and optimizer state are partitioned, per_device_train_batch_size is per device, and
// the run leaves the gathered model in the output directory. Run it with
// GOMLX_BACKEND=xla:<the XLA CPU plugin> for the plugin's 4 host devices; the Go backend has one.
func ExampleStrategy() {
	ctx := context.Background()
	b, _, err := backend.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := model.Load(b, "../testdata/models/llama_gqa", model.LoadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Finalize()
	var samples []data.Sample
	for i := range int32(16) {
		ids := []int32{1, 10 + i, 11 + i, 12 + i, 13 + i, 2}
		samples = append(samples, data.Sample{InputIDs: ids, Labels: ids})
	}
	out, err := os.MkdirTemp("", "zero-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(out)

	zero3 := &zero.Strategy{Stage: zero.Stage3, Devices: b.NumDevices()}
	var losses []float64
	trainer := &sft.Trainer{Model: m, TrainSet: samples, Placement: zero3,
		Config:   sft.Config{Args: train.Args{OutputDir: out, MaxSteps: 6, LearningRate: 1e-2}, PerDeviceTrainBatchSize: 2},
		Progress: func(_, _ int, loss float64) { losses = append(losses, loss) }}
	res, err := trainer.Train(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	rows, err := train.BatchRows(zero3, 2)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = os.Stat(filepath.Join(out, "model.safetensors"))
	fmt.Println("rows per micro-batch = 2 × devices:", rows == 2*b.NumDevices())
	fmt.Println("optimizer steps:", res.GlobalStep, "- loss fell:", losses[len(losses)-1] < losses[0])
	fmt.Println("model saved:", err == nil)
	// Output:
	// rows per micro-batch = 2 × devices: true
	// optimizer steps: 6 - loss fell: true
	// model saved: true
}
