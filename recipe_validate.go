package handbook

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
)

// Names transformers 5.24 and TRL 1.16 accept; the trainer decides which of
// them it runs (it warns about the rest).
var (
	schedulerTypes = []string{"linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
		"constant_with_warmup", "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr",
		"cosine_warmup_with_min_lr", "warmup_stable_decay", "greedy"}
	optimizerNames = []string{"adamw_torch", "adamw_torch_fused", "adamw_torch_xla", "adamw_torch_npu_fused",
		"adafactor", "adamw_anyprecision", "adamw_torch_4bit", "adamw_torch_8bit", "ademamix", "sgd", "adagrad",
		"adamw_bnb_8bit", "adamw_8bit", "ademamix_8bit", "lion_8bit", "lion_32bit", "paged_adamw_32bit",
		"paged_adamw_8bit", "paged_ademamix_32bit", "paged_ademamix_8bit", "paged_lion_32bit", "paged_lion_8bit",
		"rmsprop", "rmsprop_bnb", "rmsprop_bnb_8bit", "rmsprop_bnb_32bit", "galore_adamw", "galore_adamw_8bit",
		"galore_adafactor", "galore_adamw_layerwise", "galore_adamw_8bit_layerwise", "galore_adafactor_layerwise",
		"lomo", "adalomo", "grokadamw", "schedule_free_radam", "schedule_free_adamw", "schedule_free_sgd",
		"apollo_adamw", "apollo_adamw_layerwise", "stable_adamw"}
	dpoLossTypes = []string{"sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard",
		"aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm"}
	dtypes              = []string{"", "auto", "bfloat16", "float16", "float32"}
	attnImplementations = []string{"", "eager", "sdpa", "flash_attention_2"}
)

// finish normalises the recipe, resolves defaults that depend on other keys,
// and validates it.
func (l *loader) finish() error {
	r, t := l.r, &l.r.Training
	if !l.isSet("bf16") {
		t.BF16 = !t.FP16
	}
	if t.EvalStrategy == "steps" && t.EvalSteps == 0 {
		t.EvalSteps = t.LoggingSteps
	}
	if t.EvalStrategy != "no" {
		t.DoEval = true
	}
	if t.RunName == "" {
		t.RunName = t.OutputDir
	}
	if r.Task == TaskSFT {
		switch t.PackingStrategy {
		case "ffd":
			l.warn("packing_strategy", `packing_strategy "ffd" is TRL's older name of "bfd"; using "bfd"`)
			t.PackingStrategy = "bfd"
		case "bfd-requeue":
			t.PackingStrategy = "bfd_split"
		}
	}
	l.reportTo()
	l.noEffect()
	for _, check := range []func() error{l.validateData, l.validateModel, l.validateTraining, l.validateTask, l.validatePublish} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (l *loader) isSet(key string) bool {
	_, ok := l.set[key]
	return ok
}

// warn adds a warning about key, prefixed with where it was set.
func (l *loader) warn(key, msg string) {
	l.r.Warnings = append(l.r.Warnings, fmt.Sprintf("%s: %s", l.where(key), msg))
}

// fail is the error for key's value.
func (l *loader) fail(key, format string, args ...any) error {
	o := l.where(key)
	if o.key != "" {
		key = o.key
	}
	return fmt.Errorf("%s: %s: %s", o, key, fmt.Sprintf(format, args...))
}

// reportTo reduces report_to to the sinks that exist: TensorBoard, W&B or none.
func (l *loader) reportTo() {
	t := &l.r.Training
	var out, missing []string
	for _, s := range t.ReportTo {
		switch s {
		case "none":
		case "tensorboard", "wandb":
			out = append(out, s)
		case "all":
			out = append(out, "tensorboard", "wandb")
		default:
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		l.warn("report_to", fmt.Sprintf("report_to: %s not available here; metrics go to TensorBoard and JSONL",
			strings.Join(missing, ", ")))
		out = append(out, "tensorboard")
	}
	slices.Sort(out)
	t.ReportTo = slices.Compact(out)
}

func (l *loader) validateData() error {
	d := &l.r.Data
	var sources []string
	if d.Mixture != nil {
		sources = append(sources, "dataset_mixture")
	}
	if d.Legacy != nil {
		if d.Legacy.Mixer == nil {
			for _, k := range []string{"dataset_splits", "dataset_configs"} {
				if l.isSet(k) {
					return l.fail(k, "needs dataset_mixer")
				}
			}
		} else {
			sources = append(sources, "dataset_mixer")
		}
	}
	if d.DatasetName != "" {
		sources = append(sources, "dataset_name")
	} else {
		for _, k := range []string{"dataset_config", "dataset_train_split", "dataset_test_split"} {
			if l.isSet(k) {
				return l.fail(k, "needs dataset_name")
			}
		}
	}
	switch len(sources) {
	case 0:
		return fmt.Errorf("%s: no dataset: set dataset_mixture (or dataset_name, or the legacy dataset_mixer)", l.path)
	case 1:
	default:
		return fmt.Errorf("%s: %s and %s (%s) both set the data; keep one",
			l.where(sources[1]), sources[1], sources[0], l.where(sources[0]))
	}
	switch sources[0] {
	case "dataset_mixture":
		if err := d.Mixture.Validate(); err != nil {
			return fmt.Errorf("%s: %w", l.where("dataset_mixture"), err)
		}
	case "dataset_mixer":
		if err := d.Legacy.Validate(); err != nil {
			return fmt.Errorf("%s: %w", l.where("dataset_mixer"), err)
		}
	}
	if err := oneOf(d.TruncationSide, "", "left", "right"); err != nil {
		return l.fail("truncation_side", "%v", err)
	}
	return nil
}

func (l *loader) validateModel() error {
	m := &l.r.Model
	switch {
	case m.ModelNameOrPath == "":
		return fmt.Errorf("%s: model_name_or_path is not set", l.path)
	case oneOf(m.Dtype, dtypes...) != nil:
		return l.fail("dtype", "%v", oneOf(m.Dtype, dtypes...))
	case m.Dtype == "float16":
		return l.fail("dtype", "float16 weights are not supported; use bfloat16 (or float32)")
	case oneOf(m.AttnImplementation, attnImplementations...) != nil:
		return l.fail("attn_implementation", "%v", oneOf(m.AttnImplementation, attnImplementations...))
	case m.LoadIn4Bit && m.LoadIn8Bit:
		return l.fail("load_in_8bit", "load_in_4bit and load_in_8bit are both true; pick one")
	case (m.LoadIn4Bit || m.LoadIn8Bit) && !m.UsePEFT:
		key := "load_in_4bit"
		if m.LoadIn8Bit {
			key = "load_in_8bit"
		}
		return l.fail(key, "a quantized base model can only be trained with an adapter; set use_peft: true")
	case oneOf(m.BNB4BitQuantType, "nf4", "fp4") != nil:
		return l.fail("bnb_4bit_quant_type", "%v", oneOf(m.BNB4BitQuantType, "nf4", "fp4"))
	case oneOf(m.BNB4BitComputeDtype, dtypes...) != nil:
		return l.fail("bnb_4bit_compute_dtype", "%v", oneOf(m.BNB4BitComputeDtype, dtypes...))
	}
	if m.UsePEFT {
		switch {
		case m.LoraR < 1:
			return l.fail("lora_r", "%d must be ≥ 1", m.LoraR)
		case m.LoraAlpha <= 0:
			return l.fail("lora_alpha", "%d must be > 0", m.LoraAlpha)
		case m.LoraDropout < 0 || m.LoraDropout >= 1:
			return l.fail("lora_dropout", "%v must be in [0, 1)", m.LoraDropout)
		}
	}
	return nil
}

func (l *loader) validateTraining() error {
	t := &l.r.Training
	if t.OutputDir == "" {
		return l.fail("output_dir", "is empty")
	}
	if fi, err := os.Stat(t.OutputDir); err == nil && !fi.IsDir() {
		return l.fail("output_dir", "%s exists and is not a directory", t.OutputDir)
	}
	for _, c := range []struct {
		key string
		v   int
	}{
		{"per_device_train_batch_size", t.PerDeviceTrainBatchSize},
		{"per_device_eval_batch_size", t.PerDeviceEvalBatchSize},
		{"gradient_accumulation_steps", t.GradientAccumulationSteps},
	} {
		if c.v < 1 {
			return l.fail(c.key, "%d must be ≥ 1", c.v)
		}
	}
	switch {
	case t.MaxSteps <= 0 && t.NumTrainEpochs <= 0:
		return l.fail("num_train_epochs", "%v with max_steps %d leaves nothing to train", t.NumTrainEpochs, t.MaxSteps)
	case t.LearningRate < 0:
		return l.fail("learning_rate", "%v must be ≥ 0", t.LearningRate)
	case t.WarmupRatio < 0 || t.WarmupRatio > 1:
		return l.fail("warmup_ratio", "%v must be in [0, 1]", t.WarmupRatio)
	case t.WarmupSteps < 0 || (t.WarmupSteps > 1 && t.WarmupSteps != math.Trunc(t.WarmupSteps)):
		return l.fail("warmup_steps", "%v must be a whole number of steps or a fraction in (0, 1)", t.WarmupSteps)
	case t.WeightDecay < 0:
		return l.fail("weight_decay", "%v must be ≥ 0", t.WeightDecay)
	case t.AdamBeta1 < 0 || t.AdamBeta1 >= 1:
		return l.fail("adam_beta1", "%v must be in [0, 1)", t.AdamBeta1)
	case t.AdamBeta2 < 0 || t.AdamBeta2 >= 1:
		return l.fail("adam_beta2", "%v must be in [0, 1)", t.AdamBeta2)
	case t.AdamEpsilon < 0:
		return l.fail("adam_epsilon", "%v must be ≥ 0", t.AdamEpsilon)
	case t.MaxGradNorm < 0:
		return l.fail("max_grad_norm", "%v must be ≥ 0 (0 disables clipping)", t.MaxGradNorm)
	case t.BF16 && t.FP16:
		return l.fail("fp16", "bf16 and fp16 are both true; pick one")
	case t.FP16:
		return l.fail("fp16", "float16 mixed precision (loss scaling) is not supported; use bf16: true, which needs no loss scaling")
	case t.SaveTotalLimit < 0:
		return l.fail("save_total_limit", "%d must be ≥ 0", t.SaveTotalLimit)
	}
	if err := oneOf(t.LRSchedulerType, schedulerTypes...); err != nil {
		return l.fail("lr_scheduler_type", "%v", err)
	}
	if strings.HasSuffix(t.LRSchedulerType, "_with_min_lr") {
		_, lr := t.LRSchedulerKwargs["min_lr"]
		_, rate := t.LRSchedulerKwargs["min_lr_rate"]
		if lr == rate {
			return l.fail("lr_scheduler_kwargs", "%s needs exactly one of min_lr and min_lr_rate", t.LRSchedulerType)
		}
	}
	if err := oneOf(t.Optim, optimizerNames...); err != nil {
		return l.fail("optim", "%v", err)
	}
	if err := oneOf(t.LogLevel, "passive", "debug", "info", "warning", "error", "critical"); err != nil {
		return l.fail("log_level", "%v", err)
	}
	for _, c := range []struct {
		strategy, steps string
		kind            string
		interval        float64
		allowed         []string
	}{
		{"logging_strategy", "logging_steps", t.LoggingStrategy, t.LoggingSteps, []string{"no", "steps", "epoch"}},
		{"eval_strategy", "eval_steps", t.EvalStrategy, t.EvalSteps, []string{"no", "steps", "epoch"}},
		{"save_strategy", "save_steps", t.SaveStrategy, t.SaveSteps, []string{"no", "steps", "epoch"}},
	} {
		if c.kind == "best" && c.strategy == "save_strategy" {
			return l.fail(c.strategy, `"best" needs metric_for_best_model, which is not supported; use steps or epoch`)
		}
		if err := oneOf(c.kind, c.allowed...); err != nil {
			return l.fail(c.strategy, "%v", err)
		}
		if c.kind != "steps" {
			continue
		}
		if c.interval <= 0 {
			return l.fail(c.steps, "%v must be > 0 when %s is steps", c.interval, c.strategy)
		}
		if c.interval > 1 && c.interval != math.Trunc(c.interval) {
			return l.fail(c.steps, "%v must be a whole number of steps or a fraction in (0, 1)", c.interval)
		}
	}
	for _, c := range []struct {
		key string
		v   *int
	}{{"max_length", t.MaxLength}, {"max_prompt_length", t.MaxPromptLength}, {"max_completion_length", t.MaxCompletionLength}} {
		if c.v != nil && *c.v < 1 {
			return l.fail(c.key, "%d must be ≥ 1 (or null for no limit)", *c.v)
		}
	}
	if t.MaxPromptLength != nil && t.MaxLength != nil && *t.MaxPromptLength >= *t.MaxLength {
		return l.fail("max_prompt_length", "%d leaves no room for completions in max_length %d", *t.MaxPromptLength, *t.MaxLength)
	}
	return nil
}

// validateTask checks the keys of one task.
func (l *loader) validateTask() error {
	t := &l.r.Training
	if l.r.Task != TaskORPO {
		if err := oneOf(t.TruncationMode, "keep_start", "keep_end"); err != nil {
			return l.fail("truncation_mode", "%v", err)
		}
	}
	switch l.r.Task {
	case TaskSFT:
		if len(t.LossType) != 1 {
			return l.fail("loss_type", "SFT takes one loss type, got %v", t.LossType)
		}
		if err := oneOf(t.LossType[0], "nll", "dft"); err != nil {
			return l.fail("loss_type", "%v", err)
		}
		if err := oneOf(t.PackingStrategy, "bfd", "bfd_split", "wrapped"); err != nil {
			return l.fail("packing_strategy", "%v", err)
		}
	case TaskDPO:
		if len(t.LossType) == 0 {
			return l.fail("loss_type", "is empty")
		}
		for _, lt := range t.LossType {
			if err := oneOf(lt, dpoLossTypes...); err != nil {
				return l.fail("loss_type", "%v", err)
			}
		}
		if t.LossWeights != nil && len(t.LossWeights) != len(t.LossType) {
			return l.fail("loss_weights", "%d weights for %d loss types", len(t.LossWeights), len(t.LossType))
		}
		if t.LabelSmoothing < 0 || t.LabelSmoothing >= 0.5 {
			return l.fail("label_smoothing", "%v must be in [0, 0.5)", t.LabelSmoothing)
		}
	}
	if (l.r.Task == TaskDPO || l.r.Task == TaskORPO) && t.Beta <= 0 {
		return l.fail("beta", "%v must be > 0", t.Beta)
	}
	return nil
}
