package handbook

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/compute"

	"handbook/backend"
	"handbook/data"
	"handbook/dpo"
	"handbook/lora"
	"handbook/model"
	"handbook/sft"
	"handbook/tokenizer"
	"handbook/train"
	"handbook/train/plot"
	"handbook/train/tbevent"
	"handbook/zero"
)

// RunOptions are what a host adds to a recipe: where logs go and what to report.
type RunOptions struct {
	// Logger receives the run's one-line notices (backend choice, warnings, sizes); nil discards.
	Logger *slog.Logger
	// Progress is called after every optimizer step.
	Progress func(step, total int, loss float64)
	// ExactMatch scores that many held-out conversations (greedy answer == reference) before and
	// after training; 0 skips it.
	ExactMatch int
}

// RunResult summarizes a run.
type RunResult struct {
	OutputDir   string
	ResumedFrom string
	Train       train.Result
	// TrainRows and TestRows count the tokenized samples.
	TrainRows, TestRows int
	// ExactMatchBefore and ExactMatchAfter are set when RunOptions.ExactMatch > 0.
	ExactMatchBefore, ExactMatchAfter *float64
}

// Run executes a recipe end to end: data → model → trainer (sft, dpo or orpo, by the recipe's
// task) → output directory.
func Run(ctx context.Context, r *Recipe, opts RunOptions) (*RunResult, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, w := range r.Warnings {
		log.Warn(w)
	}
	lock, resume, err := lockOutputDir(r, log)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	b, sel, err := backend.New()
	if err != nil {
		return nil, err
	}
	log.Info(sel.String())
	m, scratch, err := loadModel(ctx, b, r, resume, log)
	if err != nil {
		return nil, err
	}
	defer m.Finalize()
	if err := familyRules(r, m, log); err != nil {
		return nil, err
	}
	in, err := prepareData(ctx, r, log)
	if err != nil {
		return nil, err
	}
	tc := r.Training
	m.Decoder.GradientCheckpointing = tc.GradientCheckpointing
	base := r.Model.ModelNameOrPath
	if scratch && r.Model.UsePEFT {
		if base, err = saveScratchBase(m, r, log); err != nil {
			return nil, err
		}
	}
	adapter, err := attachAdapter(m, r, base, log)
	if err != nil {
		return nil, err
	}
	placement, err := placementFor(b, r, log)
	if err != nil {
		return nil, err
	}
	withEval := in.mix.Test.Len() > 0 && tc.EvalStrategy != "no"

	// Each task tokenizes its data and returns the trainer's run, ready to start.
	var res RunResult
	var trainRun func(sinks []train.Sink) (train.Result, string, error)
	var outputDir string
	switch r.Task {
	case TaskSFT:
		trainSet, stats, err := data.Tokenize(ctx, in.mix.Train, in.tokCfg)
		if err != nil {
			return nil, fmt.Errorf("%s: training data: %w", r.Path, err)
		}
		log.Info("training data", "samples", len(trainSet), "no_trainable_token", stats.NoTrainable, "truncated", stats.Truncated)
		var testSet []data.Sample
		if withEval {
			if testSet, _, err = data.Tokenize(ctx, in.mix.Test, in.tokCfg); err != nil {
				return nil, fmt.Errorf("%s: test data: %w", r.Path, err)
			}
		}
		cfg, err := sftConfig(r, in.tok, len(trainSet), log)
		if err != nil {
			return nil, err
		}
		res.TrainRows, res.TestRows, outputDir = len(trainSet), len(testSet), cfg.OutputDir
		trainRun = func(sinks []train.Sink) (train.Result, string, error) {
			t := &sft.Trainer{Model: m, Config: cfg, TrainSet: trainSet, EvalSet: testSet, TokenizerDir: in.tokDir,
				Adapter: adapter, Placement: placement, Sinks: sinks, Progress: opts.Progress}
			out, err := t.Train(ctx)
			return out.Result, out.ResumedFrom, err
		}
	case TaskDPO, TaskORPO:
		trainSet, stats, err := data.TokenizePreference(ctx, in.mix.Train, in.tokCfg)
		if err != nil {
			return nil, fmt.Errorf("%s: training data: %w", r.Path, err)
		}
		log.Info("training pairs", "pairs", len(trainSet), "no_trainable_token", stats.NoTrainable, "truncated", stats.Truncated)
		var testSet []data.PreferenceSample
		if withEval {
			if testSet, _, err = data.TokenizePreference(ctx, in.mix.Test, in.tokCfg); err != nil {
				return nil, fmt.Errorf("%s: test data: %w", r.Path, err)
			}
		}
		args, ra, err := trainingArgs(r, in.tok, len(trainSet), log)
		if err != nil {
			return nil, err
		}
		res.TrainRows, res.TestRows, outputDir = len(trainSet), len(testSet), args.OutputDir
		if r.Task == TaskORPO {
			trainRun = func(sinks []train.Sink) (train.Result, string, error) {
				t := &dpo.ORPOTrainer{Model: m, Config: dpo.ORPOConfig{Args: args, RunArgs: ra, Beta: tc.Beta},
					TrainSet: trainSet, EvalSet: testSet, TokenizerDir: in.tokDir, Adapter: adapter,
					Placement: placement, Sinks: sinks, Progress: opts.Progress}
				out, err := t.Train(ctx)
				return out.Result, out.ResumedFrom, err
			}
			break
		}
		loss, err := dpoLoss(r)
		if err != nil {
			return nil, err
		}
		trainRef, err := datasetRefLogps(trainSet)
		if err != nil {
			return nil, fmt.Errorf("%s: training data: %w", r.Path, err)
		}
		evalRef, err := datasetRefLogps(testSet)
		if err != nil {
			return nil, fmt.Errorf("%s: test data: %w", r.Path, err)
		}
		trainRun = func(sinks []train.Sink) (train.Result, string, error) {
			t := &dpo.Trainer{Model: m, Config: dpo.Config{Args: args, LossConfig: loss, RunArgs: ra,
				PrecomputeRefLogProbs: tc.PrecomputeRefLogProbs},
				TrainSet: trainSet, EvalSet: testSet, TrainRefLogps: trainRef, EvalRefLogps: evalRef,
				TokenizerDir: in.tokDir, Adapter: adapter, Placement: placement, Sinks: sinks, Progress: opts.Progress}
			out, err := t.Train(ctx)
			return out.Result, out.ResumedFrom, err
		}
	default:
		return nil, fmt.Errorf("%s: unknown task %q", r.Path, r.Task)
	}
	res.OutputDir = outputDir

	var heldOut [][]tokenizer.Message
	if opts.ExactMatch > 0 {
		if heldOut, err = conversations(in.mix.Test, opts.ExactMatch); err != nil {
			return nil, fmt.Errorf("%s: exact match: %w", r.Path, err)
		}
		score, err := sft.ExactMatch(ctx, m, in.tok, in.tmpl, heldOut, 32)
		if err != nil {
			return nil, err
		}
		res.ExactMatchBefore = &score
		log.Info("held-out exact match before training", "conversations", len(heldOut), "exact_match", score)
	}

	var sinks []train.Sink
	if slices.Contains(tc.ReportTo, "tensorboard") {
		tb := &tensorBoardSink{outputDir: outputDir}
		defer tb.Close()
		sinks = append(sinks, tb)
	}
	pub, err := startPublishing(ctx, r, m, outputDir, in.tokDir, log)
	if err != nil {
		return nil, err
	}
	sinks = append(sinks, pub.sinks()...)
	res.Train, res.ResumedFrom, err = trainRun(sinks)
	if err != nil {
		pub.abort()
		return nil, fmt.Errorf("%s: %w", r.Path, err)
	}
	if res.Train.NothingToDo { // no model card, push or plot: the directory stays as it was
		pub.abort()
		return &res, nil
	}
	if err := pub.finish(ctx, r, outputDir, adapter != nil, &res); err != nil {
		return nil, fmt.Errorf("%s: %w", r.Path, err)
	}
	if err := plotLoss(filepath.Join(outputDir, "loss.png"), res.Train.State.LogHistory); err != nil {
		log.Warn("loss plot not written", "error", err)
	}
	if opts.ExactMatch > 0 {
		score, err := sft.ExactMatch(ctx, m, in.tok, in.tmpl, heldOut, 32)
		if err != nil {
			return nil, err
		}
		res.ExactMatchAfter = &score
		log.Info("held-out exact match after training", "conversations", len(heldOut), "exact_match", score)
	}
	return &res, nil
}

// attachAdapter applies the recipe's use_peft (LoRA) and load_in_4bit (QLoRA: NF4 base) keys; it
// returns nil for a full fine-tune.
// base is the base model the adapter records (adapter_config.json's base_model_name_or_path).
func attachAdapter(m *model.Model, r *Recipe, base string, log *slog.Logger) (*lora.Adapter, error) {
	ma := r.Model
	cfg, quant, err := lora.FromRecipe(lora.RecipeOptions{
		UsePEFT: ma.UsePEFT, LoraR: ma.LoraR, LoraAlpha: float64(ma.LoraAlpha), LoraDropout: ma.LoraDropout,
		LoraTargetModules: ma.LoraTargetModules, LoraModulesToSave: ma.LoraModulesToSave, UseRSLoRA: ma.UseRSLoRA,
		LoadIn4Bit: ma.LoadIn4Bit, LoadIn8Bit: ma.LoadIn8Bit, BnB4BitQuantType: ma.BNB4BitQuantType,
		UseBnBNestedQuant: ma.UseBNBNestedQuant, BnB4BitComputeDType: ma.BNB4BitComputeDtype,
	}, string(m.Config.ModelType))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Path, err)
	}
	if cfg == nil {
		return nil, nil
	}
	if quant != nil {
		if err := lora.QuantizeBase(m, *quant); err != nil {
			return nil, fmt.Errorf("%s: %w", r.Path, err)
		}
	}
	cfg.BaseModel = base
	a, err := lora.Attach(m, *cfg, uint64(r.Training.Seed))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Path, err)
	}
	log.Info("LoRA adapter", "r", cfg.R, "alpha", cfg.Alpha, "trainable_parameters", a.TrainableParameters(), "4bit", quant != nil)
	return a, nil
}

// placementFor maps --config_file (an accelerate config) to a ZeRO strategy over num_processes
// devices of the backend; nil without a config file or for a single process.
func placementFor(b compute.Backend, r *Recipe, log *slog.Logger) (*zero.Strategy, error) {
	if r.Accelerate == nil {
		return nil, nil
	}
	s, warnings, err := zero.FromAccelerateConfig(r.Accelerate.Path)
	if err != nil {
		return nil, fmt.Errorf("%s: --config_file: %w", r.Path, err)
	}
	for _, w := range warnings {
		log.Warn(w, "config_file", r.Accelerate.Path)
	}
	if n := r.Accelerate.NumProcesses; n != nil {
		s.Devices = *n
	}
	if s.Devices <= 1 {
		return nil, nil
	}
	if s.Nodes > 1 {
		return nil, fmt.Errorf("%s: --config_file %s: num_machines %d: multi-host training does not run yet: go-xla v0.4.13 runs an SPMD program over one process's devices only; see docs/MULTINODE.md for what works (rendezvous, distributed client creation) and what is missing",
			r.Path, r.Accelerate.Path, s.Nodes)
	}
	if n := b.NumDevices(); n < s.Devices {
		return nil, fmt.Errorf("%s: --config_file %s asks for %d processes but backend %s has %d device(s); "+
			"install the XLA CPU plugin (tools/install-xla-cpu.sh) and set GOMLX_BACKEND=xla:<plugin path>",
			r.Path, r.Accelerate.Path, s.Devices, b.Name(), n)
	}
	log.Info("ZeRO placement", "stage", s.Stage, "devices", s.Devices, "config_file", r.Accelerate.Path)
	return &s, nil
}

// datasetRefLogps collects the reference log-probs a preference dataset supplies (its
// ref_chosen_logps and ref_rejected_logps columns); nil when it has none. Every pair must have
// them, or none.
func datasetRefLogps(pairs []data.PreferenceSample) ([]dpo.RefLogps, error) {
	var out []dpo.RefLogps
	for i, p := range pairs {
		if (p.RefLogps != nil) != (pairs[0].RefLogps != nil) {
			return nil, fmt.Errorf("pair %d: ref_chosen_logps/ref_rejected_logps are present in some rows only", i)
		}
		if p.RefLogps != nil {
			out = append(out, dpo.RefLogps{Chosen: p.RefLogps[0], Rejected: p.RefLogps[1]})
		}
	}
	return out, nil
}

// dpoLoss maps beta, loss_type, loss_weights and label_smoothing.
func dpoLoss(r *Recipe) (dpo.LossConfig, error) {
	tc := r.Training
	types, err := dpo.ParseLossTypes(tc.LossType...)
	if err != nil {
		return dpo.LossConfig{}, fmt.Errorf("%s: loss_type: %w", r.Path, err)
	}
	loss := dpo.DefaultLossConfig()
	loss.Beta, loss.LossType, loss.LossWeights, loss.LabelSmoothing = tc.Beta, types, tc.LossWeights, tc.LabelSmoothing
	if err := loss.Validate(); err != nil {
		return dpo.LossConfig{}, fmt.Errorf("%s: %w", r.Path, err)
	}
	return loss, nil
}

// loadModel loads model_name_or_path; a directory with config.json but no weights starts from
// scratch (random init seeded by the recipe's seed).
// scratch reports a model initialized from its config alone (random weights).
func loadModel(ctx context.Context, b compute.Backend, r *Recipe, resume string, log *slog.Logger) (m *model.Model, scratch bool, err error) {
	if r.Model.ModelNameOrPath == "" {
		return nil, false, fmt.Errorf("%s: model_name_or_path is required", r.Path)
	}
	dir, err := modelDir(ctx, r.Model.ModelNameOrPath, r.Model.ModelRevision)
	if err != nil {
		return nil, false, fmt.Errorf("%s: model_name_or_path: %w", r.Path, err)
	}
	if model.HasWeights(dir) {
		m, err = model.Load(b, dir, model.LoadOptions{})
	} else {
		scratch = true
		if resume == "" {
			log.Warn("no weights in model_name_or_path: initializing from scratch", "dir", dir, "seed", r.Training.Seed)
		}
		m, err = model.Init(b, dir, 0, uint64(r.Training.Seed))
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", r.Path, err)
	}
	return m, scratch, nil
}

// scratchBaseDir is where a LoRA run on a from-scratch base keeps that base in its output_dir.
const scratchBaseDir = "base_model"

// saveScratchBase saves the randomly initialized base of a LoRA run into output_dir/base_model
// (once, or again when the run starts over), so `handbook merge`, `eval --adapter` and PEFT find
// the weights the adapter was trained on. It returns that directory.
func saveScratchBase(m *model.Model, r *Recipe, log *slog.Logger) (string, error) {
	dir := filepath.Join(r.Training.OutputDir, scratchBaseDir)
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil && !r.Training.OverwriteOutputDir {
		return dir, nil
	}
	if err := m.Save(dir, model.SaveOptions{}); err != nil {
		return "", fmt.Errorf("%s: saving the from-scratch LoRA base: %w", r.Path, err)
	}
	log.Info("the LoRA base is initialized from scratch: saved it beside the adapter", "dir", dir)
	return dir, nil
}

// preparedData is a recipe's data block resolved and ready to tokenize.
type preparedData struct {
	tokDir string // local directory of the tokenizer
	tok    *tokenizer.Tokenizer
	tmpl   *tokenizer.ChatTemplate
	mix    *data.Mixture
	tokCfg data.TokenizeConfig
}

// prepareData loads the tokenizer and chat template and resolves the dataset mixture.
func prepareData(ctx context.Context, r *Recipe, log *slog.Logger) (*preparedData, error) {
	tokDir, err := modelDir(ctx, tokenizerDir(r), r.Model.ModelRevision)
	if err != nil {
		return nil, fmt.Errorf("%s: tokenizer: %w", r.Path, err)
	}
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Path, err)
	}
	tmpl, err := chatTemplate(tok, r)
	if err != nil {
		return nil, err
	}
	mix, err := loadData(ctx, r, log)
	if err != nil {
		return nil, err
	}
	tc := r.Training
	maxLen := 0
	if tc.MaxLength != nil && !tc.Packing {
		maxLen = *tc.MaxLength
	}
	cfg := data.TokenizeConfig{
		Tokenizer: tok, Template: tmpl, EOSToken: r.Data.EOSToken, MaxLength: maxLen,
		Truncation: data.Truncation(tc.TruncationMode), AssistantOnlyLoss: tc.AssistantOnlyLoss,
		CompletionOnlyLoss: tc.CompletionOnlyLoss, Parse: data.ParseOptions{TextField: r.Data.DatasetTextField}, Logger: log,
	}
	if tc.MaxPromptLength != nil {
		cfg.MaxPromptLength = *tc.MaxPromptLength
	}
	if tc.MaxCompletionLength != nil {
		cfg.MaxCompletionLength = *tc.MaxCompletionLength
	}
	return &preparedData{tokDir: tokDir, tok: tok, tmpl: tmpl, mix: mix, tokCfg: cfg}, nil
}

func tokenizerDir(r *Recipe) string {
	if r.Model.TokenizerNameOrPath != "" {
		return r.Model.TokenizerNameOrPath
	}
	return r.Model.ModelNameOrPath
}

// chatTemplate is the recipe's chat_template when set, else the tokenizer's (the handbook's
// default zephyr template when it has none).
func chatTemplate(tok *tokenizer.Tokenizer, r *Recipe) (*tokenizer.ChatTemplate, error) {
	if r.Data.ChatTemplate != "" {
		t, err := tok.WithChatTemplate(r.Data.ChatTemplate)
		if err != nil {
			return nil, fmt.Errorf("%s: chat_template: %w", r.Path, err)
		}
		return t, nil
	}
	t, err := tok.ChatTemplate("")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Path, err)
	}
	return t, nil
}

// loadData resolves the recipe's dataset block against local files.
func loadData(ctx context.Context, r *Recipe, log *slog.Logger) (*data.Mixture, error) {
	loader := hubLoader{}
	var mix *data.Mixture
	var err error
	switch d := r.Data; {
	case d.Mixture != nil:
		mix, err = d.Mixture.Load(ctx, loader, log)
	case d.Legacy != nil && len(d.Legacy.Mixer) > 0:
		mix, err = d.Legacy.Load(ctx, loader, log)
	case d.DatasetName != "":
		mix, err = namedDataset(ctx, loader, d)
	default:
		return nil, fmt.Errorf("%s: no dataset (dataset_mixture, dataset_mixer or dataset_name)", r.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Path, err)
	}
	return mix, nil
}

// namedDataset is TRL's dataset_name / dataset_train_split / dataset_test_split.
func namedDataset(ctx context.Context, loader data.Loader, d DataArguments) (*data.Mixture, error) {
	one := func(split string) (*data.Dataset, error) {
		m, err := data.MixtureConfig{Datasets: []data.DatasetConfig{{ID: d.DatasetName, Config: d.DatasetConfig, Split: split}}}.Load(ctx, loader, nil)
		if err != nil {
			return nil, err
		}
		return m.Train, nil
	}
	trainSet, err := one(d.DatasetTrainSplit)
	if err != nil {
		return nil, err
	}
	mix := &data.Mixture{Train: trainSet}
	if d.DatasetTestSplit != "" {
		if test, err := one(d.DatasetTestSplit); err == nil {
			mix.Test = test
		}
	}
	return mix, nil
}

// trainingArgs maps the recipe's TrainingArguments onto the engine's, and the batching arguments
// the preference trainers share; trainRows sizes the schedule.
func trainingArgs(r *Recipe, tok *tokenizer.Tokenizer, trainRows int, log *slog.Logger) (train.Args, dpo.RunArgs, error) {
	tc := r.Training
	opt, err := optimizer(r, log)
	if err != nil {
		return train.Args{}, dpo.RunArgs{}, err
	}
	if tc.BF16 || tc.FP16 {
		log.Warn("bf16/fp16 requested: weights and compute stay float32 on CPU backends")
	}
	pad := int32(tok.PAD.ID)
	if tok.PAD.ID < 0 {
		pad = int32(tok.EOS.ID)
	}
	dataSeed := tc.Seed
	if tc.DataSeed != nil {
		dataSeed = *tc.DataSeed
	}
	args := train.Args{
		OutputDir: tc.OutputDir, LearningRate: tc.LearningRate, LRSchedulerType: tc.LRSchedulerType,
		MinLRRate: tc.LRSchedulerKwargs["min_lr_rate"], NumTrainEpochs: tc.NumTrainEpochs, MaxSteps: tc.MaxSteps,
		GradientAccumulationSteps: tc.GradientAccumulationSteps, MaxGradNorm: tc.MaxGradNorm, Optimizer: opt,
		Seed: uint64(tc.Seed), DataSeed: uint64(dataSeed), LoggingFirstStep: tc.LoggingFirstStep, SaveTotalLimit: tc.SaveTotalLimit,
	}
	if minLR, ok := tc.LRSchedulerKwargs["min_lr"]; ok && tc.LearningRate > 0 {
		args.MinLRRate = minLR / tc.LearningRate
	}
	probe := &train.Engine{Args: args}
	batches := (trainRows + tc.PerDeviceTrainBatchSize - 1) / max(1, tc.PerDeviceTrainBatchSize)
	total := probe.TotalSteps(batches)
	args.WarmupSteps = float64(tc.WarmupStepCount(total))
	perEpoch := max(1, (batches+max(1, tc.GradientAccumulationSteps)-1)/max(1, tc.GradientAccumulationSteps))
	every := func(strategy string, steps float64) int {
		switch strategy {
		case "steps":
			return train.StepCount(steps, total)
		case "epoch":
			return perEpoch
		}
		return 0
	}
	args.LoggingSteps = every(tc.LoggingStrategy, tc.LoggingSteps)
	args.SaveSteps = every(tc.SaveStrategy, tc.SaveSteps)
	args.EvalSteps = every(tc.EvalStrategy, tc.EvalSteps)
	ra := dpo.RunArgs{
		PerDeviceTrainBatchSize: tc.PerDeviceTrainBatchSize, PerDeviceEvalBatchSize: tc.PerDeviceEvalBatchSize,
		Truncation: data.Truncation(tc.TruncationMode), PadID: pad, PadToMultipleOf: defaultPadMultiple,
		OverwriteOutputDir: tc.OverwriteOutputDir,
	}
	if tc.PadToMultipleOf != nil {
		ra.PadToMultipleOf = *tc.PadToMultipleOf
	}
	if tc.MaxLength != nil {
		ra.MaxLength = *tc.MaxLength
	}
	return args, ra, nil
}

// sftConfig maps the recipe onto the SFT trainer.
func sftConfig(r *Recipe, tok *tokenizer.Tokenizer, trainRows int, log *slog.Logger) (sft.Config, error) {
	tc := r.Training
	args, ra, err := trainingArgs(r, tok, trainRows, log)
	if err != nil {
		return sft.Config{}, err
	}
	return sft.Config{
		Args: args, PerDeviceTrainBatchSize: ra.PerDeviceTrainBatchSize, PerDeviceEvalBatchSize: ra.PerDeviceEvalBatchSize,
		Packing: tc.Packing, PackingStrategy: data.PackStrategy(tc.PackingStrategy), PaddingFree: tc.PaddingFree,
		PadID: ra.PadID, OverwriteOutputDir: ra.OverwriteOutputDir, PadToMultipleOf: ra.PadToMultipleOf,
		MaxLength: ra.MaxLength,
	}, nil
}

// defaultPadMultiple rounds batch rows up when a recipe does not set pad_to_multiple_of (TRL pads
// to the longest row): padding is masked, so the loss is unchanged, and with rows of any length
// a run compiles a few graphs instead of one per length.
const defaultPadMultiple = 16

// optimizer maps `optim` names onto the optimizers transformers builds for them: the AdamW family
// (paged and 8-bit variants run as plain float32 AdamW, with a warning), rmsprop and sgd.
func optimizer(r *Recipe, log *slog.Logger) (train.Optimizer, error) {
	tc := r.Training
	name := tc.Optim
	switch {
	case name == "rmsprop":
		return train.RMSprop{Alpha: 0.99, Epsilon: 1e-8, WeightDecay: tc.WeightDecay}, nil
	case name == "sgd":
		return train.SGD{WeightDecay: tc.WeightDecay}, nil
	case strings.Contains(name, "8bit") || strings.HasPrefix(name, "paged_"):
		log.Warn("optim has no CPU implementation here: using float32 AdamW", "optim", name, "file", r.Path)
		fallthrough
	case strings.HasPrefix(name, "adamw"):
		return train.AdamW{Beta1: tc.AdamBeta1, Beta2: tc.AdamBeta2, Epsilon: tc.AdamEpsilon, WeightDecay: tc.WeightDecay}, nil
	}
	return nil, fmt.Errorf("%s: optim %q is not implemented (adamw_torch, adamw_torch_fused, the paged/8-bit AdamW variants, rmsprop and sgd are)", r.Path, name)
}

// conversations returns up to n held-out conversations ending with an assistant turn: the
// messages of SFT rows, or the prompt and chosen answer of preference rows.
func conversations(test *data.Dataset, n int) ([][]tokenizer.Message, error) {
	if test == nil || test.Len() == 0 {
		return nil, errors.New("there is no test split to score")
	}
	var out [][]tokenizer.Message
	for i := 0; i < test.Len() && len(out) < n; i++ {
		format := data.FormatMessages
		if _, ok := test.Rows[i]["chosen"]; ok {
			format = data.FormatPreference
		}
		ex, err := data.ParseRow(test.Rows[i], format, data.ParseOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", test.Origins[i], err)
		}
		msgs := ex.Messages
		if format == data.FormatPreference {
			msgs = append(slices.Clone(ex.Prompt.Messages), ex.Chosen.Messages...)
		}
		if len(msgs) >= 2 && msgs[len(msgs)-1].Role == "assistant" {
			out = append(out, msgs)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no held-out conversation ends with an assistant turn")
	}
	return out, nil
}

// tensorBoardSink writes each logged value as a TensorBoard scalar, tagged like transformers. Its
// event file is created with the first value, so a run with nothing to do writes none.
type tensorBoardSink struct {
	outputDir string
	w         *tbevent.Writer
}

func (s *tensorBoardSink) Log(step int, m map[string]float64) error {
	if s.w == nil {
		dir, err := tbevent.DefaultLogDir(s.outputDir)
		if err != nil {
			return err
		}
		if s.w, err = tbevent.Create(dir); err != nil {
			return err
		}
	}
	now := time.Now()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "step" {
			continue
		}
		if err := s.w.Scalar(tbevent.Tag(k), int64(step), m[k], now); err != nil {
			return err
		}
	}
	return s.w.Flush()
}

// Close closes the event file, if one was written.
func (s *tensorBoardSink) Close() error {
	if s.w == nil {
		return nil
	}
	return s.w.Close()
}

// lockOutputDir holds the recipe's output_dir for the whole run (the trainer locks it again, and
// decides what it resumes from) and returns the checkpoint a resume will start from, which it logs.
func lockOutputDir(r *Recipe, log *slog.Logger) (*train.OutputLock, string, error) {
	dir := r.Training.OutputDir
	lock, err := train.LockOutputDir(dir)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", r.Path, err)
	}
	if lock.Stale != "" {
		log.Warn("output_dir: the previous run there ended without releasing its lock (killed?)", "previous", lock.Stale)
	}
	if r.Training.OverwriteOutputDir {
		return lock, "", nil
	}
	resume, err := train.LastCheckpoint(dir)
	if err != nil {
		lock.Release()
		return nil, "", fmt.Errorf("%s: output_dir: %w", r.Path, err)
	}
	if resume != "" {
		log.Info("resuming from "+filepath.Base(resume), "dir", resume)
	}
	return lock, resume, nil
}

// plotLoss draws train and eval loss curves.
func plotLoss(path string, entries []map[string]float64) error {
	series := map[string]*plot.Series{"loss": {Name: "train loss"}, "eval_loss": {Name: "eval loss"}}
	for _, e := range entries {
		for key, s := range series {
			if v, ok := e[key]; ok {
				s.Points = append(s.Points, plot.Point{Step: int64(e["step"]), Value: v})
			}
		}
	}
	chart := plot.Chart{Title: "loss", YLabel: "loss"}
	for _, key := range []string{"loss", "eval_loss"} {
		if len(series[key].Points) > 0 {
			chart.Series = append(chart.Series, *series[key])
		}
	}
	if len(chart.Series) == 0 {
		return fs.ErrNotExist
	}
	return plot.SavePNG(path, chart)
}
