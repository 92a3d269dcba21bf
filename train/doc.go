// Package train is the training engine every trainer (sft, dpo) shares. An Engine trains a
// model's weights on an Objective over host Batches, with transformers' semantics: gradient
// accumulation normalized by the units (tokens, pairs) of the whole optimizer step, global-norm
// clipping as torch.nn.utils.clip_grad_norm_, AdamW with decoupled weight decay and
// transformers' decay exclusion (GoMLX's optimizers have neither), RMSprop and SGD, transformers'
// learning-rate schedules, logging to Sinks (metrics.jsonl; TensorBoard in train/tbevent, W&B in
// train/wandb, the loss plot in train/plot), evaluation, and atomic checkpoints that resume bit
// for bit. Output writes the final output directory as transformers' Trainer leaves it.
//
// A run holds its output directory (LockOutputDir) and Engine.OpenOutputDir decides what it does
// with what it finds there: start a new history (overwrite_output_dir), resume from the newest
// checkpoint unless the directory's final model is newer, or nothing when the run is finished.
// The rules, and how transformers differs, are in outputdir.go.
//
// Two seams make the other packages plug in without train importing them:
//   - Adapter: a set of weights trained on a frozen model (*lora.Adapter). One Adapter field on the
//     Engine (and on every trainer) trains, checkpoints and saves the adapter alone, and builds
//     training graphs on its TrainingDecoder.
//   - Placement: where a step's tensors live on a device mesh (*zero.Strategy). With one, the
//     Engine runs its optimizer step as a ShardedStep; BatchRows says how many rows a
//     per-device batch makes on it.
//
// A zero Args is transformers' TrainingArguments defaults (3 epochs at 5e-5, linear decay,
// AdamW); Args.Validate names the key and the field of what no run can use.
//
// Mixed precision: a trainable weight stored in 16 bits trains through a float32 master (the
// model keeps the 16-bit working copy; gradients are accumulated, clipped and reduced in float32;
// checkpoints keep the masters), and the optimizer update runs one decoder layer at a time because
// XLA here aliases no donated input with an output (update.go). CompileStepMemory compiles a step
// from shapes for XLA's memory accounting (memory.go).
package train
