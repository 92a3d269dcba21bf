// Package sft is supervised fine-tuning on the training engine: TRL's SFTTrainer semantics —
// masked next-token cross entropy averaged over the trainable tokens of each optimizer step,
// optional packing and padding-free batches — over samples that package data tokenized.
// The run ends with the output directory transformers' Trainer leaves: the model (config.json +
// safetensors), the tokenizer files, trainer_state.json, train_results.json and all_results.json.
package sft
