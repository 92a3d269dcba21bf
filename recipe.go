package handbook

import (
	"handbook/train"
	"math"
	"path/filepath"
	"strings"

	"handbook/data"
)

// Task is the job a recipe is loaded for: it picks the defaults (TRL's
// SFTConfig, DPOConfig or ORPOConfig) and which task-specific keys are valid.
type Task string

// The tasks of the handbook's scripts.
const (
	// TaskSFT is supervised fine-tuning (run_sft.py, also used for continued
	// pre-training).
	TaskSFT Task = "sft"
	// TaskDPO is direct preference optimisation (run_dpo.py).
	TaskDPO Task = "dpo"
	// TaskORPO is odds-ratio preference optimisation (run_orpo.py).
	TaskORPO Task = "orpo"
)

// TaskFromPath is the task a recipe is written for, from the handbook's layout
// (recipes/<model>/{sft,dpo,orpo}/…): orpo and dpo folders (or "dpo" in the
// file name), else sft.
func TaskFromPath(path string) Task {
	switch p := filepath.ToSlash(path); {
	case strings.Contains(p, "/orpo/"):
		return TaskORPO
	case strings.Contains(p, "/dpo/") || strings.Contains(filepath.Base(p), "dpo"):
		return TaskDPO
	}
	return TaskSFT
}

// Recipe is one handbook recipe YAML, typed, with overrides applied, defaults
// filled in and validated.
type Recipe struct {
	// Path is the YAML file the recipe was read from.
	Path string
	// Task is the job the recipe was loaded for.
	Task Task

	Model    ModelArguments
	Data     DataArguments
	Training TrainingArguments

	// Accelerate is the accelerate config given with --config_file; nil when
	// none was given.
	Accelerate *AccelerateConfig
	// Ignored holds the value of every accepted-but-ignored key the recipe or
	// its overrides set (see IgnoredKeys), by key.
	Ignored map[string]any
	// Warnings are the loader's messages for the caller to show: one per
	// ignored key that asks for something, and settings that were adjusted.
	Warnings []string
}

// ModelArguments are the model keys of a recipe (TRL's ModelConfig and the
// legacy handbook's ModelArguments).
type ModelArguments struct {
	// ModelNameOrPath is a Hub model id or a local directory.
	ModelNameOrPath string `mapstructure:"model_name_or_path"`
	// ModelRevision is the Hub revision (default "main").
	ModelRevision string `mapstructure:"model_revision"`
	// Dtype is the dtype weights are loaded in: "auto" or "" (the model's own),
	// "bfloat16", "float16" or "float32" (TRL's default). Also read from the
	// older key torch_dtype.
	Dtype string `mapstructure:"dtype"`
	// AttnImplementation is transformers' attn_implementation: "eager" (the
	// default), "sdpa" or "flash_attention_2" (the backend's fused attention
	// where it has one, else eager with a warning; see model.Decoder.Attention).
	AttnImplementation string `mapstructure:"attn_implementation"`
	// TokenizerNameOrPath, when set, loads the tokenizer from elsewhere than
	// the model.
	TokenizerNameOrPath string `mapstructure:"tokenizer_name_or_path"`

	// UsePEFT trains a LoRA adapter instead of the full model.
	UsePEFT bool `mapstructure:"use_peft"`
	// LoraR is the LoRA rank (default 16).
	LoraR int `mapstructure:"lora_r"`
	// LoraAlpha is the LoRA scaling numerator (default 32).
	LoraAlpha int `mapstructure:"lora_alpha"`
	// LoraDropout is the dropout on the adapter input (default 0.05).
	LoraDropout float64 `mapstructure:"lora_dropout"`
	// LoraTargetModules are the module names adapted; a single "all-linear"
	// means every linear layer but the output head. Nil means the
	// architecture's defaults, as PEFT does.
	LoraTargetModules []string `mapstructure:"lora_target_modules"`
	// LoraModulesToSave are modules trained in full and saved with the adapter.
	LoraModulesToSave []string `mapstructure:"lora_modules_to_save"`
	// UseRSLoRA scales the adapter by alpha/sqrt(r) instead of alpha/r.
	UseRSLoRA bool `mapstructure:"use_rslora"`

	// LoadIn4Bit quantises the frozen base model to 4 bits (QLoRA).
	LoadIn4Bit bool `mapstructure:"load_in_4bit"`
	// LoadIn8Bit quantises the frozen base model to 8 bits.
	LoadIn8Bit bool `mapstructure:"load_in_8bit"`
	// BNB4BitQuantType is the 4-bit data type: "nf4" (default) or "fp4".
	BNB4BitQuantType string `mapstructure:"bnb_4bit_quant_type"`
	// UseBNBNestedQuant also quantises the quantisation constants.
	UseBNBNestedQuant bool `mapstructure:"use_bnb_nested_quant"`
	// BNB4BitComputeDtype is the dtype 4-bit matmuls compute in; "" means Dtype.
	BNB4BitComputeDtype string `mapstructure:"bnb_4bit_compute_dtype"`
	// BNB4BitQuantStorage is the storage dtype of packed 4-bit weights; "" is
	// the default (uint8).
	BNB4BitQuantStorage string `mapstructure:"bnb_4bit_quant_storage"`
}

// DataArguments are the data keys of a recipe. Exactly one source is set:
// Mixture, Legacy, or DatasetName.
type DataArguments struct {
	// Mixture is the `dataset_mixture` block (the handbook's current format).
	Mixture *data.MixtureConfig `mapstructure:"dataset_mixture"`
	// Legacy holds the older `dataset_mixer`, `dataset_splits` and
	// `dataset_configs` keys; Legacy.Order is the mixer's key order as written.
	Legacy *data.LegacyMixtureConfig `mapstructure:",squash"`

	// DatasetName is TRL's single dataset (a Hub id or local path), used with
	// DatasetConfig, DatasetTrainSplit and DatasetTestSplit.
	DatasetName string `mapstructure:"dataset_name"`
	// DatasetConfig is DatasetName's config name.
	DatasetConfig string `mapstructure:"dataset_config"`
	// DatasetTrainSplit is DatasetName's train split (default "train").
	DatasetTrainSplit string `mapstructure:"dataset_train_split"`
	// DatasetTestSplit is DatasetName's test split (default "test"), used when
	// evaluating.
	DatasetTestSplit string `mapstructure:"dataset_test_split"`

	// ChatTemplate, when set, replaces the tokenizer's chat template.
	ChatTemplate string `mapstructure:"chat_template"`
	// EOSToken, when set, replaces the tokenizer's end-of-sequence token
	// (SFT).
	EOSToken string `mapstructure:"eos_token" task:"sft"`
	// DatasetTextField is the column of plain-text datasets (default "text";
	// the legacy key text_column is read too) (SFT).
	DatasetTextField string `mapstructure:"dataset_text_field" task:"sft"`
	// DatasetKwargs are TRL's dataset preparation switches (SFT).
	DatasetKwargs DatasetKwargs `mapstructure:"dataset_kwargs" task:"sft"`
	// TruncationSide is the tokenizer's truncation side, "left" or "right";
	// "" keeps the tokenizer's (legacy handbook key).
	TruncationSide string `mapstructure:"truncation_side"`
	// AutoInsertEmptySystemMsg inserts an empty system message when the chat
	// template expects one and the conversation has none (legacy handbook;
	// default true).
	AutoInsertEmptySystemMsg bool `mapstructure:"auto_insert_empty_system_msg"`
}

// DatasetKwargs are the `dataset_kwargs` of TRL's SFTConfig.
type DatasetKwargs struct {
	// AddSpecialTokens, when false, does not add the tokenizer's BOS/EOS
	// around each rendered example (the chat template already does). Nil
	// means the tokenizer's default.
	AddSpecialTokens *bool `mapstructure:"add_special_tokens"`
	// AppendConcatToken, when false, does not put an EOS between packed
	// examples. Nil means TRL's default (true).
	AppendConcatToken *bool `mapstructure:"append_concat_token"`
	// SkipPrepareDataset uses the dataset as already tokenized.
	SkipPrepareDataset bool `mapstructure:"skip_prepare_dataset"`
}

// TrainingArguments are transformers' TrainingArguments plus the keys of
// TRL's SFTConfig, DPOConfig and ORPOConfig that recipes use. Keys of one
// task are rejected in a recipe loaded for another.
type TrainingArguments struct {
	// OutputDir receives checkpoints and the final model (default
	// "trainer_output", transformers' default).
	OutputDir string `mapstructure:"output_dir"`
	// OverwriteOutputDir starts afresh instead of resuming from the last
	// checkpoint in OutputDir.
	OverwriteOutputDir bool `mapstructure:"overwrite_output_dir"`
	// RunName names the run in logs (default: OutputDir).
	RunName string `mapstructure:"run_name"`
	// Seed seeds initialisation and data order (default 42).
	Seed int `mapstructure:"seed"`
	// DataSeed, when set, seeds data order separately from Seed.
	DataSeed *int `mapstructure:"data_seed"`
	// DoTrain is recorded as transformers does; the scripts always train.
	DoTrain bool `mapstructure:"do_train"`
	// DoEval evaluates on the test split; true whenever EvalStrategy is not
	// "no".
	DoEval bool `mapstructure:"do_eval"`

	// NumTrainEpochs is the number of epochs (default 3), used when MaxSteps
	// is ≤ 0.
	NumTrainEpochs float64 `mapstructure:"num_train_epochs"`
	// MaxSteps, when > 0, is the number of optimizer steps (default -1).
	MaxSteps int `mapstructure:"max_steps"`
	// PerDeviceTrainBatchSize is the micro-batch size per device (default 8).
	PerDeviceTrainBatchSize int `mapstructure:"per_device_train_batch_size"`
	// PerDeviceEvalBatchSize is the eval batch size per device (default 8).
	PerDeviceEvalBatchSize int `mapstructure:"per_device_eval_batch_size"`
	// GradientAccumulationSteps is the number of micro-batches per optimizer
	// step (default 1).
	GradientAccumulationSteps int `mapstructure:"gradient_accumulation_steps"`
	// GradientCheckpointing recomputes activations in the backward pass
	// (TRL's default: true).
	GradientCheckpointing bool `mapstructure:"gradient_checkpointing"`
	// AverageTokensAcrossDevices normalises the loss by the trainable tokens
	// of all devices (default true).
	AverageTokensAcrossDevices bool `mapstructure:"average_tokens_across_devices"`

	// LearningRate is the peak learning rate (defaults: SFT 2e-5, DPO and
	// ORPO 1e-6, TRL's).
	LearningRate float64 `mapstructure:"learning_rate"`
	// LRSchedulerType is a transformers scheduler name (default "linear").
	LRSchedulerType string `mapstructure:"lr_scheduler_type"`
	// LRSchedulerKwargs are the scheduler's extra arguments, e.g. min_lr_rate
	// for cosine_with_min_lr.
	LRSchedulerKwargs map[string]float64 `mapstructure:"lr_scheduler_kwargs"`
	// WarmupRatio is the fraction of total steps spent warming up, used when
	// WarmupSteps is 0.
	WarmupRatio float64 `mapstructure:"warmup_ratio"`
	// WarmupSteps is the number of warmup steps; a value in (0, 1) is a
	// fraction of total steps, as in transformers 5. See WarmupStepCount.
	WarmupSteps float64 `mapstructure:"warmup_steps"`
	// Optim is a transformers optimizer name (default "adamw_torch_fused").
	Optim string `mapstructure:"optim"`
	// WeightDecay is AdamW's decoupled weight decay (default 0).
	WeightDecay float64 `mapstructure:"weight_decay"`
	// AdamBeta1 is AdamW's β1 (default 0.9).
	AdamBeta1 float64 `mapstructure:"adam_beta1"`
	// AdamBeta2 is AdamW's β2 (default 0.999).
	AdamBeta2 float64 `mapstructure:"adam_beta2"`
	// AdamEpsilon is AdamW's ε (default 1e-8).
	AdamEpsilon float64 `mapstructure:"adam_epsilon"`
	// MaxGradNorm clips the global gradient norm; 0 disables (default 1).
	MaxGradNorm float64 `mapstructure:"max_grad_norm"`
	// BF16 trains in bfloat16 mixed precision as torch.autocast does (TRL's
	// default: true unless FP16): bf16 matrix products, float32 softmax,
	// norms, loss, master weights and optimizer state.
	BF16 bool `mapstructure:"bf16"`
	// FP16 (float16 mixed precision with loss scaling) is not supported: a
	// recipe setting it is an error that says to use bf16.
	FP16 bool `mapstructure:"fp16"`
	// ModelInitKwargs are extra arguments for loading the model (e.g. dtype).
	ModelInitKwargs map[string]any `mapstructure:"model_init_kwargs"`

	// LoggingStrategy is "steps" (default), "epoch" or "no".
	LoggingStrategy string `mapstructure:"logging_strategy"`
	// LoggingSteps is the logging interval in steps, or a fraction of total
	// steps when in (0, 1) (TRL's default: 10). See Steps.
	LoggingSteps float64 `mapstructure:"logging_steps"`
	// LoggingFirstStep also logs the first step.
	LoggingFirstStep bool `mapstructure:"logging_first_step"`
	// LogLevel is "passive" (default), "debug", "info", "warning", "error" or
	// "critical".
	LogLevel string `mapstructure:"log_level"`
	// ReportTo are the metric sinks besides JSONL: "tensorboard" and
	// "wandb" (an offline W&B run) after loading ("all" means both;
	// unavailable integrations are replaced by tensorboard with a warning).
	ReportTo []string `mapstructure:"report_to"`

	// EvalStrategy is "no" (default), "steps" or "epoch"; also read from the
	// older key evaluation_strategy.
	EvalStrategy string `mapstructure:"eval_strategy"`
	// EvalSteps is the eval interval (or a fraction of total steps); it
	// defaults to LoggingSteps when EvalStrategy is "steps".
	EvalSteps float64 `mapstructure:"eval_steps"`

	// SaveStrategy is "steps" (default), "epoch" or "no".
	SaveStrategy string `mapstructure:"save_strategy"`
	// SaveSteps is the checkpoint interval in steps, or a fraction of total
	// steps when in (0, 1) (default 500). See Steps.
	SaveSteps float64 `mapstructure:"save_steps"`
	// SaveTotalLimit keeps only the newest checkpoints; 0 keeps all.
	SaveTotalLimit int `mapstructure:"save_total_limit"`
	// SaveOnlyModel saves weights without optimizer, scheduler and RNG state
	// (such checkpoints cannot be resumed).
	SaveOnlyModel bool `mapstructure:"save_only_model"`
	// RemoveUnusedColumns drops dataset columns the task does not use
	// (default true).
	RemoveUnusedColumns bool `mapstructure:"remove_unused_columns"`

	// MaxLength truncates tokenized examples (or packs to this length); nil
	// means no truncation. Default 1024 (TRL). Also read from the older SFT
	// key max_seq_length.
	MaxLength *int `mapstructure:"max_length"`
	// TruncationMode is "keep_start" (default) or "keep_end" (SFT, DPO).
	TruncationMode string `mapstructure:"truncation_mode" task:"sft,dpo"`
	// PaddingFree packs a batch into one row without padding (SFT, DPO).
	PaddingFree bool `mapstructure:"padding_free" task:"sft,dpo"`
	// PadToMultipleOf rounds padded batch rows up to a multiple; nil means
	// the trainer's default (SFT, DPO). Each distinct row length compiles
	// its own graph, so rounding trades a little padding for fewer compiles.
	PadToMultipleOf *int `mapstructure:"pad_to_multiple_of" task:"sft,dpo"`
	// LossType is the loss: SFT "nll" (default) or "dft"; DPO one or more of
	// TRL's loss types (default ["sigmoid"]), combined with LossWeights.
	LossType []string `mapstructure:"loss_type" task:"sft,dpo"`

	// Packing packs examples into MaxLength rows (SFT).
	Packing bool `mapstructure:"packing" task:"sft"`
	// PackingStrategy is "bfd" (default), "bfd_split" or "wrapped"; the
	// older name "ffd" reads as "bfd" (SFT).
	PackingStrategy string `mapstructure:"packing_strategy" task:"sft"`
	// CompletionOnlyLoss computes the loss on completions only for
	// prompt-completion data; nil means TRL's automatic choice (SFT).
	CompletionOnlyLoss *bool `mapstructure:"completion_only_loss" task:"sft"`
	// AssistantOnlyLoss computes the loss on assistant turns only, using the
	// chat template's generation markers (SFT).
	AssistantOnlyLoss bool `mapstructure:"assistant_only_loss" task:"sft"`

	// Beta is the preference loss temperature (DPO) or the odds-ratio weight
	// λ (ORPO) (default 0.1).
	Beta float64 `mapstructure:"beta" task:"dpo,orpo"`
	// MaxPromptLength truncates prompts (from the left) before MaxLength
	// applies; nil means no separate prompt limit (TRL ≥ 1 has none) (DPO,
	// ORPO).
	MaxPromptLength *int `mapstructure:"max_prompt_length" task:"dpo,orpo"`
	// MaxCompletionLength truncates completions; nil means none (DPO, ORPO).
	MaxCompletionLength *int `mapstructure:"max_completion_length" task:"dpo,orpo"`
	// DisableDropout turns dropout off in the policy and reference models
	// (default true) (DPO, ORPO).
	DisableDropout bool `mapstructure:"disable_dropout" task:"dpo,orpo"`
	// LossWeights weigh LossType's losses; nil means 1 each (DPO).
	LossWeights []float64 `mapstructure:"loss_weights" task:"dpo"`
	// LabelSmoothing is the conservative-DPO label noise in [0, 0.5) (DPO).
	LabelSmoothing float64 `mapstructure:"label_smoothing" task:"dpo"`
	// RefModelInitKwargs are extra arguments for loading the reference model
	// (DPO).
	RefModelInitKwargs map[string]any `mapstructure:"ref_model_init_kwargs" task:"dpo"`
	// Publish are the keys that push the run to the Hub and name its W&B run.
	Publish PublishArguments `mapstructure:",squash"`

	// PrecomputeRefLogProbs computes the reference log-probabilities once
	// before training, so no reference model is held during it (DPO).
	PrecomputeRefLogProbs bool `mapstructure:"precompute_ref_log_probs" task:"dpo"`
	// RouterAuxLossCoef weighs a mixture-of-experts model's router
	// load-balancing loss; nil means the model config's router_aux_loss_coef
	// and 0 turns it off (SFT, DPO; see routerAuxLoss).
	RouterAuxLossCoef *float64 `mapstructure:"router_aux_loss_coef" task:"sft,dpo"`
}

// AccelerateConfig is the accelerate YAML given with --config_file.
type AccelerateConfig struct {
	// Path is the file as given.
	Path string
	// Settings are its top-level keys, decoded from YAML.
	Settings map[string]any
	// NumProcesses, when set, replaces the file's num_processes (accelerate
	// launch's --num_processes).
	NumProcesses *int
}

// defaultRecipe is a recipe with every default of transformers 5.24 /
// TRL 1.16 for task.
func defaultRecipe(task Task) *Recipe {
	maxLen := 1024
	r := &Recipe{
		Task: task,
		Model: ModelArguments{
			ModelRevision:    "main",
			Dtype:            "float32",
			LoraR:            16,
			LoraAlpha:        32,
			LoraDropout:      0.05,
			BNB4BitQuantType: "nf4",
		},
		Data: DataArguments{
			DatasetTrainSplit:        "train",
			DatasetTestSplit:         "test",
			DatasetTextField:         "text",
			AutoInsertEmptySystemMsg: true,
		},
		Training: TrainingArguments{
			OutputDir:                  "trainer_output",
			Seed:                       42,
			NumTrainEpochs:             3,
			MaxSteps:                   -1,
			PerDeviceTrainBatchSize:    8,
			PerDeviceEvalBatchSize:     8,
			GradientAccumulationSteps:  1,
			GradientCheckpointing:      true,
			AverageTokensAcrossDevices: true,
			LRSchedulerType:            "linear",
			Optim:                      "adamw_torch_fused",
			AdamBeta1:                  0.9,
			AdamBeta2:                  0.999,
			AdamEpsilon:                1e-8,
			MaxGradNorm:                1,
			LoggingStrategy:            "steps",
			LoggingSteps:               10,
			LogLevel:                   "passive",
			EvalStrategy:               "no",
			SaveStrategy:               "steps",
			SaveSteps:                  500,
			RemoveUnusedColumns:        true,
			MaxLength:                  &maxLen,
			TruncationMode:             "keep_start",
			Publish:                    PublishArguments{HubStrategy: "every_save", HubModelRevision: "main"},
		},
		Ignored: map[string]any{},
	}
	switch task {
	case TaskSFT:
		r.Training.LearningRate = 2e-5
		r.Training.LossType = []string{"nll"}
		r.Training.PackingStrategy = "bfd"
	case TaskDPO:
		r.Training.LearningRate = 1e-6
		r.Training.LossType = []string{"sigmoid"}
		r.Training.Beta = 0.1
		r.Training.DisableDropout = true
	case TaskORPO:
		r.Training.LearningRate = 1e-6
		r.Training.Beta = 0.1
		r.Training.DisableDropout = true
	}
	return r
}

// WarmupStepCount is the number of warmup steps of a run of totalSteps
// optimizer steps: WarmupSteps when ≥ 1 (a fraction of totalSteps when in
// (0, 1)), otherwise ceil(WarmupRatio·totalSteps), as transformers computes it.
func (t *TrainingArguments) WarmupStepCount(totalSteps int) int {
	if t.WarmupSteps > 0 {
		return train.StepCount(t.WarmupSteps, totalSteps)
	}
	return int(math.Ceil(t.WarmupRatio * float64(totalSteps)))
}
