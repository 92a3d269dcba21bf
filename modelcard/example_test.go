package modelcard_test

import (
	"fmt"
	"strings"

	"handbook/modelcard"
)

// The front matter of an SFT run's card.
func Example() {
	c := modelcard.Card{BaseModel: "HuggingFaceTB/SmolLM2-135M", ModelName: "tiny-sft", HubModelID: "alice/tiny-sft",
		Datasets: []string{"HuggingFaceH4/ultrachat_200k"}, Tags: []string{"alignment-handbook", "trl", "sft"}, TrainerName: "SFT"}
	front := strings.SplitN(c.Markdown(), "---\n", 3)[1]
	fmt.Print(front)
	// Output:
	// base_model: HuggingFaceTB/SmolLM2-135M
	// datasets: HuggingFaceH4/ultrachat_200k
	// library_name: transformers
	// model_name: tiny-sft
	// tags:
	// - generated_from_trainer
	// - alignment-handbook
	// - trl
	// - sft
	// licence: license
}
