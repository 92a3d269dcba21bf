// Package modelcard writes output_dir/README.md, the model card TRL writes at the end of a run:
// YAML front matter (base_model, datasets, library_name, model_name, tags, licence) and TRL's
// lm_model_card.md text, plus the run's hyperparameters and final metrics as transformers' own
// Trainer card lists them. For a LoRA adapter it applies PEFT's create_or_update_model_card on
// top (library_name peft, the adapter tags, pipeline_tag text-generation, the PEFT version line),
// as a PEFT model's save does.
//
// The cards are checked line by line against cards TRL 1.16 and PEFT 0.21.2 wrote for the same
// inputs (tools/oracle/modelcard_golden.py).
package modelcard
