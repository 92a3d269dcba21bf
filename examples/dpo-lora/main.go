// Command dpo-lora aligns the tiny demo chat model with DPO through a LoRA adapter, with the
// library alone: the run `handbook dpo recipes/tiny/dpo/config_lora.yaml` does from a recipe, in
// the shape of a TRL + PEFT script (model and tokenizer, dataset, LoRA config, DPO config,
// trainer). The reference policy is the model itself with the adapter disabled. It starts from the
// SFT demo model, so run that first:
//
//	go run ./examples/sft -out out/tiny-sft
//	go run ./examples/dpo-lora
package main

import (
	"context"
	"log"

	"handbook"
	"handbook/data"
	"handbook/dpo"
	"handbook/lora"
	"handbook/train"
)

func main() {
	ctx := context.Background()
	m, tok, err := handbook.LoadPretrained(ctx, "out/tiny-sft", nil)
	check(err)
	rows, err := data.Load(ctx, handbook.HubLoader{}, data.DatasetRef{ID: "recipes/tiny/data/preference", Split: "train"})
	check(err)
	pairs, _, err := data.TokenizePreference(ctx, rows, data.TokenizeConfig{Tokenizer: tok, MaxPromptLength: 64})
	check(err)
	adapter, err := lora.Attach(m, lora.Config{R: 16, Alpha: 32, Dropout: 0.05, TargetModules: []string{lora.AllLinear}}, 42)
	check(err)
	args := train.Args{OutputDir: "out/dpo-lora", LearningRate: 3e-4, MaxSteps: 150, LoggingSteps: 10}
	res, err := (&dpo.Trainer{Model: m, Adapter: adapter, TrainSet: pairs, Config: dpo.Config{Args: args}}).Train(ctx)
	check(err)
	log.Printf("%d steps, train loss %.4f; the PEFT adapter is in %s", res.GlobalStep, res.TrainLoss, args.OutputDir)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
