// Package handbook is the alignment-handbook as a Go library: the YAML recipes
// that drive its run_sft.py, run_dpo.py and run_orpo.py scripts, loaded into
// typed configuration and wired end to end onto the sft and dpo trainers.
//
// A recipe is loaded for one Task with LoadRecipe, which reads the YAML file,
// applies `--key=value` overrides the way the handbook's TrlParser does, fills
// in the defaults of transformers' TrainingArguments and TRL's
// SFTConfig/DPOConfig/ORPOConfig, and validates the result:
//
//	path, overrides, err := handbook.ParseArgs(os.Args[2:])
//	recipe, err := handbook.LoadRecipe(path, handbook.TaskSFT, overrides)
//	for _, w := range recipe.Warnings { log.Print(w) }
//
// Both data formats of the handbook load: the current `dataset_mixture`
// block (data.MixtureConfig), the legacy `dataset_mixer` + `dataset_splits` +
// `dataset_configs` keys (data.LegacyMixtureConfig), and TRL's single
// `dataset_name`.
//
// Unknown keys are errors with a did-you-mean suggestion. Keys that only make
// sense for the Python stack (attention kernels, the Hugging Face Hub, Weights
// & Biases, …) are accepted and ignored, each with one warning in
// Recipe.Warnings; IgnoredKeys lists them. The library never prints.
package handbook
