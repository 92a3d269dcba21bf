// Command zero trains a tiny model with a chosen ZeRO stage on every device the backend has, and
// prints the loss of each step and what each device holds.
//
//	tools/install-xla-cpu.sh
//	GOMLX_BACKEND=xla:$HOME/.cache/handbook/xla-cpu/pjrt_c_api_cpu_plugin.so \
//	  go run ./examples/zero --stage 3
//
// On the XLA CPU plugin that is 4 host devices; on a GPU machine, every GPU. The Go backend has
// one device, where every stage is plain training.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/gomlx/gomlx/core/tensors"

	"handbook/backend"
	"handbook/model"
	"handbook/train"
	"handbook/zero"
)

func main() {
	stage := flag.Int("stage", 3, "ZeRO stage 0–3")
	dir := flag.String("model", "testdata/models/llama_gqa", "model directory")
	steps := flag.Int("steps", 10, "optimizer steps")
	rowsPerDevice := flag.Int("rows", 2, "batch rows per device")
	flag.Parse()
	if err := run(context.Background(), zero.Stage(*stage), *dir, *steps, *rowsPerDevice); err != nil {
		fmt.Fprintln(os.Stderr, "zero:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, stage zero.Stage, dir string, steps, rowsPerDevice int) error {
	b, sel, err := backend.New()
	if err != nil {
		return err
	}
	fmt.Println(sel)
	m, err := model.Load(b, dir, model.LoadOptions{})
	if err != nil {
		return err
	}
	strategy := &zero.Strategy{Stage: stage, Devices: b.NumDevices()}
	if err := strategy.Validate(); err != nil {
		return err
	}
	rows := rowsPerDevice * strategy.Devices
	if err := strategy.CheckBatch(rows); err != nil {
		return err
	}
	s := &train.ShardedStep{Model: m, Objective: train.CausalLM{}, MaxGradNorm: 1, Placement: strategy}
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	const seq = 32
	for step := 1; step <= steps; step++ {
		// A small repeating alphabet the model can learn, so the loss falls.
		ids := make([]int32, rows*seq)
		for i := range ids {
			ids[i] = int32(rng.IntN(16))
		}
		batch := tensors.FromFlatDataAndDimensions(ids, rows, seq)
		res, err := s.Step(ctx, []map[string]*tensors.Tensor{{"input_ids": batch, "labels": batch}}, step, 1e-3)
		if err != nil {
			return err
		}
		fmt.Printf("step %2d  loss %.4f  grad_norm %.4f\n", step, res.Loss, res.GradNorm)
	}
	r := s.Resident()
	for d := range r.Params {
		fmt.Printf("device %d holds: parameters %d B, gradients %d B, optimizer state %d B\n", d, r.Params[d], r.Grads[d], r.OptimizerState[d])
	}
	return nil
}
