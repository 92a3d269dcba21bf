package dpo_test

import (
	"fmt"

	"handbook/dpo"
)

// Validate a recipe's loss settings before training: unknown loss types are listed with the
// valid ones, and loss_weights must match loss_type.
func Example() {
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
