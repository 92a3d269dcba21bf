package handbook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
// task) → output directory. It is a composition of the recipe's bridges — LockOutputDir,
// LoadModel, LoadDatasets, AttachAdapter, Placement, SFTConfig/DPOConfig/ORPOConfig, Sinks and
// StartPublishing — which a host program calls itself to adjust any part before training.
func Run(ctx context.Context, r *Recipe, opts RunOptions) (*RunResult, error) {
	log := orDiscard(opts.Logger)
	for _, w := range r.Warnings {
		log.Warn(w)
	}
	lock, _, err := r.LockOutputDir(log)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	b, sel, err := backend.New()
	if err != nil {
		return nil, err
	}
	log.Info(sel.String())
	m, base, err := r.LoadModel(ctx, b, log)
	if err != nil {
		return nil, err
	}
	defer m.Finalize()
	ds, err := r.LoadDatasets(ctx, log)
	if err != nil {
		return nil, err
	}
	adapter, err := r.AttachAdapter(m, base, log)
	if err != nil {
		return nil, err
	}
	placement, err := r.Placement(b, log)
	if err != nil {
		return nil, err
	}

	// Each task tokenizes its data and returns the trainer's run, ready to start.
	var res RunResult
	var trainRun func(sinks []train.Sink) (train.Result, string, error)
	switch r.Task {
	case TaskSFT:
		trainSet, testSet, stats, err := ds.Samples(ctx)
		if err != nil {
			return nil, err
		}
		log.Info("training data", "samples", len(trainSet), "no_trainable_token", stats.NoTrainable, "truncated", stats.Truncated)
		cfg, err := r.SFTConfig(ds.Tokenizer, len(trainSet), placement, log)
		if err != nil {
			return nil, err
		}
		res.TrainRows, res.TestRows, res.OutputDir = len(trainSet), len(testSet), cfg.OutputDir
		trainRun = func(sinks []train.Sink) (train.Result, string, error) {
			t := &sft.Trainer{Model: m, Config: cfg, TrainSet: trainSet, EvalSet: testSet, TokenizerDir: ds.TokenizerDir,
				Adapter: adapter, Placement: placement, Sinks: sinks, Progress: opts.Progress}
			out, err := t.Train(ctx)
			return out.Result, out.ResumedFrom, err
		}
	case TaskDPO, TaskORPO:
		trainSet, testSet, stats, err := ds.Pairs(ctx)
		if err != nil {
			return nil, err
		}
		log.Info("training pairs", "pairs", len(trainSet), "no_trainable_token", stats.NoTrainable, "truncated", stats.Truncated)
		res.TrainRows, res.TestRows = len(trainSet), len(testSet)
		if r.Task == TaskORPO {
			cfg, err := r.ORPOConfig(ds.Tokenizer, len(trainSet), placement, log)
			if err != nil {
				return nil, err
			}
			res.OutputDir = cfg.OutputDir
			trainRun = func(sinks []train.Sink) (train.Result, string, error) {
				t := &dpo.ORPOTrainer{Model: m, Config: cfg, TrainSet: trainSet, EvalSet: testSet, TokenizerDir: ds.TokenizerDir,
					Adapter: adapter, Placement: placement, Sinks: sinks, Progress: opts.Progress}
				out, err := t.Train(ctx)
				return out.Result, out.ResumedFrom, err
			}
			break
		}
		cfg, err := r.DPOConfig(ds.Tokenizer, len(trainSet), placement, log)
		if err != nil {
			return nil, err
		}
		res.OutputDir = cfg.OutputDir
		trainRun = func(sinks []train.Sink) (train.Result, string, error) {
			// The reference log-probs of a dataset's ref_chosen_logps/ref_rejected_logps columns
			// travel with the pairs.
			t := &dpo.Trainer{Model: m, Config: cfg, TrainSet: trainSet, EvalSet: testSet, TokenizerDir: ds.TokenizerDir,
				Adapter: adapter, Placement: placement, Sinks: sinks, Progress: opts.Progress}
			out, err := t.Train(ctx)
			return out.Result, out.ResumedFrom, err
		}
	default:
		return nil, fmt.Errorf("%s: unknown task %q", r.Path, r.Task)
	}

	var heldOut [][]tokenizer.Message
	if opts.ExactMatch > 0 {
		if heldOut, err = ds.HeldOut(opts.ExactMatch); err != nil {
			return nil, err
		}
		score, err := sft.ExactMatch(ctx, m, ds.Tokenizer, ds.Template, heldOut, 32)
		if err != nil {
			return nil, err
		}
		res.ExactMatchBefore = &score
		log.Info("held-out exact match before training", "conversations", len(heldOut), "exact_match", score)
	}

	sinks, closeSinks := r.Sinks(res.OutputDir)
	defer closeSinks()
	pub, err := r.StartPublishing(ctx, m, res.OutputDir, ds.TokenizerDir, log)
	if err != nil {
		return nil, err
	}
	res.Train, res.ResumedFrom, err = trainRun(append(sinks, pub.Sinks()...))
	if err != nil {
		pub.Abort()
		return nil, fmt.Errorf("%s: %w", r.Path, err)
	}
	if res.Train.NothingToDo { // no model card, push or plot: the directory stays as it was
		pub.Abort()
		return &res, nil
	}
	if err := pub.Finish(ctx, adapter != nil, res.Train); err != nil {
		return nil, fmt.Errorf("%s: %w", r.Path, err)
	}
	if err := plot.SaveLossPNG(filepath.Join(res.OutputDir, "loss.png"), res.Train.State.LogHistory); err != nil {
		log.Warn("loss plot not written", "error", err)
	}
	if opts.ExactMatch > 0 {
		score, err := sft.ExactMatch(ctx, m, ds.Tokenizer, ds.Template, heldOut, 32)
		if err != nil {
			return nil, err
		}
		res.ExactMatchAfter = &score
		log.Info("held-out exact match after training", "conversations", len(heldOut), "exact_match", score)
	}
	return &res, nil
}

// AttachAdapter applies the recipe's use_peft (LoRA: lora_r, lora_alpha, lora_dropout,
// lora_target_modules, …, its A matrices seeded by seed) and load_in_4bit (QLoRA: the base
// quantized to NF4 first) keys to m; base is what adapter_config.json records as
// base_model_name_or_path (LoadModel's). It returns nil for a full fine-tune; a trainer's Adapter
// field takes the result either way.
func (r *Recipe) AttachAdapter(m *model.Model, base string, log *slog.Logger) (*lora.Adapter, error) {
	log = orDiscard(log)
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

// Placement maps --config_file (an accelerate config) to a ZeRO strategy over num_processes
// devices of the backend; nil — one device — without a config file or for a single process. A
// trainer's Placement field takes the result either way; per_device_train_batch_size stays per
// device.
func (r *Recipe) Placement(b compute.Backend, log *slog.Logger) (*zero.Strategy, error) {
	log = orDiscard(log)
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

// dpoLoss maps beta, loss_type, loss_weights and label_smoothing.
func (r *Recipe) dpoLoss() (dpo.LossConfig, error) {
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

// LoadModel loads model_name_or_path — a local directory, or a Hub model id downloaded into the
// Hugging Face cache at model_revision — on backend b, in dtype's precision (weightsDType), with
// gradient_checkpointing, bf16 and attn_implementation (setPrecision) and the family's rules (a
// mixture of experts' router_aux_loss_coef, the dropout warning) applied. A directory with
// config.json but no weights starts from scratch (random init seeded by seed); with use_peft that
// random base is saved into output_dir/base_model, so `handbook merge`, `eval --adapter` and PEFT
// find the weights the adapter was trained on. base is what an adapter on m records as its base
// model (AttachAdapter's): model_name_or_path, or that directory.
func (r *Recipe) LoadModel(ctx context.Context, b compute.Backend, log *slog.Logger) (m *model.Model, base string, err error) {
	log = orDiscard(log)
	if r.Model.ModelNameOrPath == "" {
		return nil, "", fmt.Errorf("%s: model_name_or_path is required", r.Path)
	}
	dir, err := modelDir(ctx, r.Model.ModelNameOrPath, r.Model.ModelRevision)
	if err != nil {
		return nil, "", fmt.Errorf("%s: model_name_or_path: %w", r.Path, err)
	}
	scratch := !model.HasWeights(dir)
	dtype, err := weightsDType(r.Model.Dtype, dir)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", r.Path, err)
	}
	opts := PretrainedOptions{Backend: b, DType: dtype, FromScratch: true, Seed: uint64(r.Training.Seed), Logger: log}
	if scratch && r.resumes() {
		opts.Logger = orDiscard(nil) // the checkpoint's weights replace the random ones: nothing to warn about
	}
	if m, err = loadModelDir(dir, opts); err != nil {
		return nil, "", fmt.Errorf("%s: %w", r.Path, err)
	}
	m.Decoder.GradientCheckpointing = r.Training.GradientCheckpointing
	if err := setPrecision(m, r, log); err != nil {
		m.Finalize()
		return nil, "", err
	}
	if err := familyRules(r, m, log); err != nil {
		m.Finalize()
		return nil, "", err
	}
	base = r.Model.ModelNameOrPath
	if scratch && r.Model.UsePEFT {
		if base, err = saveScratchBase(m, r, log); err != nil {
			m.Finalize()
			return nil, "", err
		}
	}
	return m, base, nil
}

// resumes reports whether a run of the recipe resumes from a checkpoint in output_dir.
func (r *Recipe) resumes() bool {
	if r.Training.OverwriteOutputDir {
		return false
	}
	last, err := train.LastCheckpoint(r.Training.OutputDir)
	return err == nil && last != ""
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

// Datasets is a recipe's data resolved and ready to tokenize: the tokenizer and chat template the
// recipe names, the dataset mixture, and the tokenization its keys ask for.
type Datasets struct {
	// TokenizerDir is the local directory of the tokenizer (a trainer copies its files into the
	// output).
	TokenizerDir string
	Tokenizer    *tokenizer.Tokenizer
	// Template is chat_template, else the tokenizer's own.
	Template *tokenizer.ChatTemplate
	// Mixture holds the train rows and, when the recipe has a test split, the test rows.
	Mixture *data.Mixture
	// Tokenize is max_length, truncation_mode, assistant_only_loss, completion_only_loss,
	// max_prompt_length, … as data's tokenization takes them.
	Tokenize data.TokenizeConfig
	// Evaluate says the test split is tokenized for evaluation during training: eval_strategy is
	// not "no" and the mixture has test rows.
	Evaluate bool

	path string // the recipe's, for errors
}

// LoadDatasets loads the tokenizer (tokenizer_name_or_path, else model_name_or_path; local or
// Hub) and chat template, and resolves the dataset block (dataset_mixture, the legacy
// dataset_mixer, or dataset_name) against local files and the Hub (HubLoader).
func (r *Recipe) LoadDatasets(ctx context.Context, log *slog.Logger) (*Datasets, error) {
	log = orDiscard(log)
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
	return &Datasets{TokenizerDir: tokDir, Tokenizer: tok, Template: tmpl, Mixture: mix, Tokenize: cfg,
		Evaluate: mix.Test.Len() > 0 && tc.EvalStrategy != "no", path: r.Path}, nil
}

// Samples tokenizes the training rows for SFT (stats counts what that dropped or cut), and the
// test rows when Evaluate.
func (d *Datasets) Samples(ctx context.Context) (trainSet, testSet []data.Sample, stats data.Stats, err error) {
	return tokenizeSplits(ctx, d, data.Tokenize)
}

// Pairs tokenizes the training rows as preference pairs for DPO and ORPO, and the test rows when
// Evaluate.
func (d *Datasets) Pairs(ctx context.Context) (trainSet, testSet []data.PreferenceSample, stats data.Stats, err error) {
	return tokenizeSplits(ctx, d, data.TokenizePreference)
}

func tokenizeSplits[S any](ctx context.Context, d *Datasets,
	tokenize func(context.Context, *data.Dataset, data.TokenizeConfig) ([]S, data.Stats, error)) (trainSet, testSet []S, stats data.Stats, err error) {
	if trainSet, stats, err = tokenize(ctx, d.Mixture.Train, d.Tokenize); err != nil {
		return nil, nil, stats, fmt.Errorf("%s: training data: %w", d.path, err)
	}
	if d.Evaluate {
		if testSet, _, err = tokenize(ctx, d.Mixture.Test, d.Tokenize); err != nil {
			return nil, nil, stats, fmt.Errorf("%s: test data: %w", d.path, err)
		}
	}
	return trainSet, testSet, stats, nil
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

// loadData resolves the recipe's dataset block against local files and the Hub.
func loadData(ctx context.Context, r *Recipe, log *slog.Logger) (*data.Mixture, error) {
	loader := HubLoader{}
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

// TrainArgs maps the recipe's TrainingArguments onto the engine's. trainRows (the samples or pairs
// of the training set) and the placement (nil: one device) size the schedule: warmup_ratio, and
// logging/eval/save strategies given in epochs or fractions of the run, become step counts.
func (r *Recipe) TrainArgs(trainRows int, p train.Placement, log *slog.Logger) (train.Args, error) {
	log = orDiscard(log)
	tc := r.Training
	opt, err := r.Optimizer(log)
	if err != nil {
		return train.Args{}, err
	}
	rows, err := train.BatchRows(p, tc.PerDeviceTrainBatchSize)
	if err != nil {
		return train.Args{}, fmt.Errorf("%s: %w", r.Path, err)
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
	batches := (trainRows + rows - 1) / rows
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
	return args, nil
}

// runArgs maps the batching and output keys the trainers share; the pad token is TRL's: the
// tokenizer's pad token, else EOS.
func (r *Recipe) runArgs(tok *tokenizer.Tokenizer) dpo.RunArgs {
	tc := r.Training
	pad := int32(tok.PAD.ID)
	if tok.PAD.ID < 0 {
		pad = int32(tok.EOS.ID)
	}
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
	return ra
}

// SFTConfig maps the recipe onto TRL's SFTConfig for sft.Trainer; trainRows, p and log are
// TrainArgs'. tok gives the pad token.
func (r *Recipe) SFTConfig(tok *tokenizer.Tokenizer, trainRows int, p train.Placement, log *slog.Logger) (sft.Config, error) {
	tc := r.Training
	args, err := r.TrainArgs(trainRows, p, log)
	if err != nil {
		return sft.Config{}, err
	}
	ra := r.runArgs(tok)
	return sft.Config{
		Args: args, PerDeviceTrainBatchSize: ra.PerDeviceTrainBatchSize, PerDeviceEvalBatchSize: ra.PerDeviceEvalBatchSize,
		Packing: tc.Packing, PackingStrategy: data.PackStrategy(tc.PackingStrategy), PaddingFree: tc.PaddingFree,
		PadID: ra.PadID, OverwriteOutputDir: ra.OverwriteOutputDir, PadToMultipleOf: ra.PadToMultipleOf,
		MaxLength: ra.MaxLength,
	}, nil
}

// DPOConfig maps the recipe onto TRL's DPOConfig for dpo.Trainer (the loss: beta, loss_type,
// loss_weights, label_smoothing; precompute_ref_log_probs); trainRows, p and log are TrainArgs'.
// tok gives the pad token.
func (r *Recipe) DPOConfig(tok *tokenizer.Tokenizer, trainRows int, p train.Placement, log *slog.Logger) (dpo.Config, error) {
	args, err := r.TrainArgs(trainRows, p, log)
	if err != nil {
		return dpo.Config{}, err
	}
	loss, err := r.dpoLoss()
	if err != nil {
		return dpo.Config{}, err
	}
	return dpo.Config{Args: args, LossConfig: loss, RunArgs: r.runArgs(tok), PrecomputeRefLogProbs: r.Training.PrecomputeRefLogProbs}, nil
}

// ORPOConfig maps the recipe onto TRL's ORPOConfig for dpo.ORPOTrainer (beta is λ); trainRows, p
// and log are TrainArgs'. tok gives the pad token.
func (r *Recipe) ORPOConfig(tok *tokenizer.Tokenizer, trainRows int, p train.Placement, log *slog.Logger) (dpo.ORPOConfig, error) {
	args, err := r.TrainArgs(trainRows, p, log)
	if err != nil {
		return dpo.ORPOConfig{}, err
	}
	return dpo.ORPOConfig{Args: args, RunArgs: r.runArgs(tok), Beta: r.Training.Beta}, nil
}

// defaultPadMultiple rounds batch rows up when a recipe does not set pad_to_multiple_of (TRL pads
// to the longest row): padding is masked, so the loss is unchanged, and with rows of any length
// a run compiles a few graphs instead of one per length.
const defaultPadMultiple = 16

// Optimizer maps optim (with adam_beta1, adam_beta2, adam_epsilon, weight_decay) onto the
// optimizer transformers builds for it: the AdamW family (paged and 8-bit variants run as plain
// float32 AdamW, with a warning), rmsprop and sgd.
func (r *Recipe) Optimizer(log *slog.Logger) (train.Optimizer, error) {
	log = orDiscard(log)
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

// HeldOut returns up to n test conversations ending with an assistant turn, for scoring (as
// sft.ExactMatch does): the messages of SFT rows, or the prompt and chosen answer of preference
// rows.
func (d *Datasets) HeldOut(n int) ([][]tokenizer.Message, error) {
	out, err := conversations(d.Mixture.Test, n)
	if err != nil {
		return nil, fmt.Errorf("%s: held-out conversations: %w", d.path, err)
	}
	return out, nil
}

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

// Sinks returns the metric sinks report_to asks for besides the trainer's own metrics.jsonl — a
// TensorBoard event file under outputDir/runs/ for "tensorboard", created with the first value
// logged — and a function that closes them after training.
func (r *Recipe) Sinks(outputDir string) (sinks []train.Sink, closeSinks func() error) {
	if !slices.Contains(r.Training.ReportTo, "tensorboard") {
		return nil, func() error { return nil }
	}
	tb := tbevent.NewSink(outputDir)
	return []train.Sink{tb}, tb.Close
}

// LockOutputDir holds the recipe's output_dir for a whole run (the trainer locks it again, and
// decides what it resumes from) and returns the checkpoint a resume will start from, which it
// logs. Release the lock when the run is over.
func (r *Recipe) LockOutputDir(log *slog.Logger) (lock *train.OutputLock, resume string, err error) {
	log = orDiscard(log)
	dir := r.Training.OutputDir
	if lock, err = train.LockOutputDir(dir); err != nil {
		return nil, "", fmt.Errorf("%s: %w", r.Path, err)
	}
	if lock.Stale != "" {
		log.Warn("output_dir: the previous run there ended without releasing its lock (killed?)", "previous", lock.Stale)
	}
	if r.Training.OverwriteOutputDir {
		return lock, "", nil
	}
	if resume, err = train.LastCheckpoint(dir); err != nil {
		lock.Release()
		return nil, "", fmt.Errorf("%s: output_dir: %w", r.Path, err)
	}
	if resume != "" {
		log.Info("resuming from "+filepath.Base(resume), "dir", resume)
	}
	return lock, resume, nil
}

// orDiscard is log, or a logger that discards when it is nil.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
