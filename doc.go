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
//
// Run trains a recipe end to end. It is a composition of bridges from a loaded
// recipe to each part of a run, which a host program calls itself to adjust any
// part before training:
//
//	m, base, err := r.LoadModel(ctx, b, log)    // model_name_or_path (local or Hub), gradient_checkpointing
//	ds, err := r.LoadDatasets(ctx, log)         // tokenizer, chat template, mixture, tokenization keys
//	adapter, err := r.AttachAdapter(m, base, log) // use_peft / load_in_4bit: *lora.Adapter, nil for full
//	placement, err := r.Placement(b, log)       // --config_file: *zero.Strategy, nil for one device
//	trainSet, testSet, _, err := ds.Pairs(ctx)  // (Samples for SFT)
//	cfg, err := r.DPOConfig(ds.Tokenizer, len(trainSet), placement, log) // or SFTConfig, ORPOConfig
//	cfg.LearningRate = 5e-7                     // adjust anything
//	sinks, closeSinks := r.Sinks(cfg.OutputDir) // report_to tensorboard
//	pub, err := r.StartPublishing(ctx, m, cfg.OutputDir, ds.TokenizerDir, log) // push_to_hub, wandb
//	t := &dpo.Trainer{Model: m, Config: cfg, TrainSet: trainSet, EvalSet: testSet, Adapter: adapter,
//		Placement: placement, Sinks: append(sinks, pub.Sinks()...), TokenizerDir: ds.TokenizerDir}
//	out, err := t.Train(ctx)
//	err = pub.Finish(ctx, adapter != nil, out.Result) // model card, final push, W&B summary
//
// TrainArgs and Optimizer map the shared TrainingArguments keys, and HubLoader
// is the data.Loader recipes use. The CLI (cmd/handbook) goes through Run, so
// a host can do all it does.
package handbook
