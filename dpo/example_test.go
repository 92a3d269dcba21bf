package dpo_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"handbook/backend"
	"handbook/data"
	"handbook/dpo"
	"handbook/lora"
	"handbook/model"
	"handbook/train"
)

// Example aligns a small Llama with DPO through a LoRA adapter. The Adapter field is all the
// wiring: only the adapter trains, the output directory holds the PEFT adapter alone, and the
// reference policy is the same model with the adapter disabled (no second copy), so the first
// step's loss is ln 2. The zero Config is TRL's DPOConfig (β 0.1, sigmoid) but for the steps and
// the learning rate.
func Example() {
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
	adapter, err := lora.Attach(m, lora.Config{R: 8, Alpha: 16, TargetModules: []string{lora.AllLinear}}, 42)
	if err != nil {
		fmt.Println(err)
		return
	}
	// data.TokenizePreference makes these from preference rows; here the token ids are written out.
	pairs := []data.PreferenceSample{
		{PromptIDs: []int32{1, 5, 6, 7}, ChosenIDs: []int32{20, 21, 2}, RejectedIDs: []int32{40, 41, 2}},
		{PromptIDs: []int32{1, 8, 9}, ChosenIDs: []int32{22, 23, 2}, RejectedIDs: []int32{42, 2}},
	}

	out, err := os.MkdirTemp("", "dpo-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(out)
	var logged history
	trainer := &dpo.Trainer{Model: m, Adapter: adapter, TrainSet: pairs, Sinks: []train.Sink{&logged},
		Config: dpo.Config{Args: train.Args{OutputDir: out, MaxSteps: 10, LearningRate: 5e-3, LoggingSteps: 1}}}
	if _, err := trainer.Train(ctx); err != nil {
		fmt.Println(err)
		return
	}
	first, last := logged[0], logged[len(logged)-1]
	fmt.Printf("step 1: loss %.4f, ln 2 = %.4f\n", first["loss"], math.Ln2)
	fmt.Println("step 10: loss below ln 2:", last["loss"] < math.Ln2, "- chosen preferred in every pair:", last["rewards/accuracies"] == 1)
	for _, f := range []string{lora.ConfigFile, lora.WeightsFile, "model.safetensors"} {
		_, err := os.Stat(filepath.Join(out, f))
		fmt.Println(f, err == nil)
	}
	// Output:
	// step 1: loss 0.6931, ln 2 = 0.6931
	// step 10: loss below ln 2: true - chosen preferred in every pair: true
	// adapter_config.json true
	// adapter_model.safetensors true
	// model.safetensors false
}

// history keeps every logged entry of a run.
type history []map[string]float64

func (h *history) Log(_ int, metrics map[string]float64) error {
	*h = append(*h, metrics)
	return nil
}

// Validate a recipe's loss settings before training: unknown loss types are listed with the
// valid ones, and loss_weights must match loss_type.
func ExampleLossConfig_Validate() {
	types, err := dpo.ParseLossTypes("sigmoid", "sft")
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := dpo.DefaultLossConfig()
	cfg.LossType, cfg.LossWeights = types, []float64{0.8, 0.2}
	fmt.Println(cfg.Validate())

	cfg.LossWeights = []float64{1}
	fmt.Println(cfg.Validate())

	_, err = dpo.ParseLossTypes("simpo")
	fmt.Println(err)
	// Output:
	// <nil>
	// loss_weights has 1 values for 2 loss types [sigmoid sft]
	// unknown loss_type "simpo"; valid: sigmoid, hinge, ipo, exo_pair, nca_pair, robust, bco_pair, sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, sft, sigmoid_norm
}
