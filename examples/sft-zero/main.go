// Command sft-zero trains the tiny demo chat model from scratch with ZeRO stage 3 over every
// device of the backend, with the library alone: parameters, gradients and optimizer state are
// partitioned over the devices and per_device_train_batch_size is per device, as in
// `accelerate launch --config_file zero3.yaml` of a TRL SFT script. On CPU, the XLA plugin gives
// 4 host devices:
//
//	tools/install-xla-cpu.sh
//	GOMLX_BACKEND=xla:$HOME/.cache/handbook/xla-cpu/pjrt_c_api_cpu_plugin.so go run ./examples/sft-zero
package main

import (
	"context"
	"log"

	"handbook"
	"handbook/data"
	"handbook/sft"
	"handbook/train"
	"handbook/zero"
)

func main() {
	ctx, dir := context.Background(), "recipes/tiny/model"
	m, tok, err := handbook.LoadPretrained(ctx, dir, &handbook.PretrainedOptions{FromScratch: true, Seed: 42})
	check(err)
	rows, err := data.Load(ctx, handbook.HubLoader{}, data.DatasetRef{ID: "recipes/tiny/data/sft", Split: "train"})
	check(err)
	samples, _, err := data.Tokenize(ctx, rows, data.TokenizeConfig{Tokenizer: tok, AssistantOnlyLoss: true})
	check(err)
	zero3 := &zero.Strategy{Stage: zero.Stage3, Devices: m.Backend().NumDevices()}
	cfg := sft.Config{Args: train.Args{OutputDir: "out/sft-zero", LearningRate: 2e-3, MaxSteps: 100, LoggingSteps: 10}, PerDeviceTrainBatchSize: 8}
	trainer := &sft.Trainer{Model: m, TrainSet: samples, Placement: zero3, Config: cfg, TokenizerDir: dir}
	res, err := trainer.Train(ctx)
	check(err)
	log.Printf("%d steps on %d devices, train loss %.4f; the model is in %s", res.GlobalStep, zero3.Devices, res.TrainLoss, cfg.OutputDir)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
