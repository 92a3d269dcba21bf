package handbook_test

import (
	"fmt"
	"log"

	"handbook"
)

// Load a seed recipe the way `handbook sft RECIPE --key=value …` does.
func ExampleLoadRecipe() {
	path, overrides, err := handbook.ParseArgs([]string{
		"testdata/recipes/recipes/zephyr-7b-beta/sft/config_full.yaml",
		"--learning_rate=1e-4", "--num_train_epochs", "2", "--lora_target_modules=q_proj,v_proj",
	})
	if err != nil {
		log.Fatal(err)
	}
	r, err := handbook.LoadRecipe(path, handbook.TaskSFT, overrides)
	if err != nil {
		log.Fatal(err)
	}
	t := r.Training
	fmt.Println("model:", r.Model.ModelNameOrPath, r.Model.Dtype, r.Model.LoraTargetModules)
	for _, d := range r.Data.Mixture.Datasets {
		fmt.Println("data:", d.ID, d.Split, *d.Weight)
	}
	fmt.Println("lr:", t.LearningRate, t.LRSchedulerType, "warmup", t.WarmupStepCount(1000), "of 1000 steps")
	fmt.Println("epochs:", t.NumTrainEpochs, "max_length:", *t.MaxLength, "report_to:", t.ReportTo)
	fmt.Println(len(r.Warnings), "warnings; first:", r.Warnings[0])
	// Output:
	// model: mistralai/Mistral-7B-v0.1 bfloat16 [q_proj v_proj]
	// data: HuggingFaceH4/ultrachat_200k train_sft 1
	// data: HuggingFaceH4/ultrachat_200k test_sft 1
	// lr: 0.0001 cosine warmup 100 of 1000 steps
	// epochs: 2 max_length: 2048 report_to: [wandb]
	// 2 warnings; first: testdata/recipes/recipes/zephyr-7b-beta/sft/config_full.yaml:25: dataset_num_proc ignored: preprocessing runs in this process; there are no worker processes to size
}
