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
	"handbook/model"
	"handbook/sft"
	"handbook/tokenizer"
	"handbook/train"
	"handbook/train/plot"
	"handbook/train/tbevent"
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

// Run executes a recipe end to end: data → model → trainer → output directory. Only the sft
// task runs so far; dpo and orpo recipes load and validate but are refused here.
func Run(ctx context.Context, r *Recipe, opts RunOptions) (*RunResult, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if r.Task != TaskSFT {
		return nil, fmt.Errorf("%s: the %s task is not implemented yet (sft is)", r.Path, r.Task)
	}
	for _, w := range r.Warnings {
		log.Warn(w)
	}
	b, sel, err := backend.New()
	if err != nil {
		return nil, err
	}
	log.Info(sel.String())

	m, err := loadModel(b, r, log)
	if err != nil {
		return nil, err
	}
	defer m.Finalize()
	in, err := prepareData(ctx, r, log)
	if err != nil {
		return nil, err
	}
	tok, tmpl, mix, tc := in.tok, in.tmpl, in.mix, r.Training
	trainSet, stats, err := data.Tokenize(ctx, mix.Train, in.tokCfg)
	if err != nil {
		return nil, fmt.Errorf("%s: training data: %w", r.Path, err)
	}
	log.Info("training data", "samples", len(trainSet), "no_trainable_token", stats.NoTrainable, "truncated", stats.Truncated)
	var testSet []data.Sample
	if mix.Test != nil && mix.Test.Len() > 0 && tc.EvalStrategy != "no" {
		if testSet, _, err = data.Tokenize(ctx, mix.Test, in.tokCfg); err != nil {
			return nil, fmt.Errorf("%s: test data: %w", r.Path, err)
		}
	}

	cfg, err := sftConfig(r, tok, len(trainSet), log)
	if err != nil {
		return nil, err
	}
	m.Decoder.GradientCheckpointing = tc.GradientCheckpointing
	res := &RunResult{OutputDir: cfg.OutputDir, TrainRows: len(trainSet), TestRows: len(testSet)}

	var heldOut [][]tokenizer.Message
	if opts.ExactMatch > 0 {
		if heldOut, err = conversations(mix.Test, opts.ExactMatch); err != nil {
			return nil, fmt.Errorf("%s: exact match: %w", r.Path, err)
		}
		score, err := sft.ExactMatch(ctx, m, tok, tmpl, heldOut, 32)
		if err != nil {
			return nil, err
		}
		res.ExactMatchBefore = &score
		log.Info("held-out exact match before training", "conversations", len(heldOut), "exact_match", score)
	}

	var sinks []train.Sink
	var history historySink
	sinks = append(sinks, &history)
	if slices.Contains(tc.ReportTo, "tensorboard") {
		tb, err := newTensorBoardSink(cfg.OutputDir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Path, err)
		}
		defer tb.w.Close()
		sinks = append(sinks, tb)
	}
	trainer := &sft.Trainer{Model: m, Config: cfg, TrainSet: trainSet, EvalSet: testSet, TokenizerDir: tokenizerDir(r),
		Sinks: sinks, Progress: opts.Progress}
	out, err := trainer.Train(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Path, err)
	}
	res.Train, res.ResumedFrom = out.Result, out.ResumedFrom
	if err := plotLoss(filepath.Join(cfg.OutputDir, "loss.png"), history.entries); err != nil {
		log.Warn("loss plot not written", "error", err)
	}
	if opts.ExactMatch > 0 {
		score, err := sft.ExactMatch(ctx, m, tok, tmpl, heldOut, 32)
		if err != nil {
			return nil, err
		}
		res.ExactMatchAfter = &score
		log.Info("held-out exact match after training", "conversations", len(heldOut), "exact_match", score)
	}
	return res, nil
}

// loadModel loads model_name_or_path; a directory with config.json but no weights starts from
// scratch (random init seeded by the recipe's seed).
func loadModel(b compute.Backend, r *Recipe, log *slog.Logger) (*model.Model, error) {
	dir := r.Model.ModelNameOrPath
	if dir == "" {
		return nil, fmt.Errorf("%s: model_name_or_path is required", r.Path)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s: model_name_or_path %q is not a local directory (Hub downloads are not available yet)", r.Path, dir)
	}
	var m *model.Model
	var err error
	if model.HasWeights(dir) {
		m, err = model.Load(b, dir, model.LoadOptions{})
	} else {
		log.Warn("no weights in model_name_or_path: initializing from scratch", "dir", dir, "seed", r.Training.Seed)
		m, err = model.Init(b, dir, 0, uint64(r.Training.Seed))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Path, err)
	}
	return m, nil
}

// preparedData is a recipe's data block resolved and ready to tokenize.
type preparedData struct {
	tok    *tokenizer.Tokenizer
	tmpl   *tokenizer.ChatTemplate
	mix    *data.Mixture
	tokCfg data.TokenizeConfig
}

// prepareData loads the tokenizer and chat template and resolves the dataset mixture.
func prepareData(ctx context.Context, r *Recipe, log *slog.Logger) (*preparedData, error) {
	tok, err := tokenizer.Load(tokenizerDir(r))
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
	return &preparedData{tok: tok, tmpl: tmpl, mix: mix, tokCfg: cfg}, nil
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
	loader := data.LocalLoader{}
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

// sftConfig maps the recipe's training arguments onto the SFT trainer.
func sftConfig(r *Recipe, tok *tokenizer.Tokenizer, trainRows int, log *slog.Logger) (sft.Config, error) {
	tc := r.Training
	opt, err := optimizer(r, log)
	if err != nil {
		return sft.Config{}, err
	}
	if tc.BF16 || tc.FP16 {
		log.Warn("bf16/fp16 requested: weights and compute stay float32 on CPU backends")
	}
	pad := int32(tok.PAD.ID)
	if tok.PAD.ID < 0 {
		pad = int32(tok.EOS.ID)
	}
	seed := tc.Seed
	if tc.DataSeed != nil {
		seed = *tc.DataSeed
	}
	args := train.Args{
		OutputDir: tc.OutputDir, LearningRate: tc.LearningRate, LRSchedulerType: tc.LRSchedulerType,
		MinLRRate: tc.LRSchedulerKwargs["min_lr_rate"], NumTrainEpochs: tc.NumTrainEpochs, MaxSteps: tc.MaxSteps,
		GradientAccumulationSteps: tc.GradientAccumulationSteps, MaxGradNorm: tc.MaxGradNorm, Optimizer: opt,
		Seed: uint64(seed), LoggingFirstStep: tc.LoggingFirstStep, SaveTotalLimit: tc.SaveTotalLimit,
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
	cfg := sft.Config{
		Args: args, PerDeviceTrainBatchSize: tc.PerDeviceTrainBatchSize, PerDeviceEvalBatchSize: tc.PerDeviceEvalBatchSize,
		Packing: tc.Packing, PackingStrategy: data.PackStrategy(tc.PackingStrategy), PaddingFree: tc.PaddingFree,
		PadID: pad, Seed: int64(seed), OverwriteOutputDir: tc.OverwriteOutputDir, PadToMultipleOf: defaultPadMultiple,
	}
	if tc.PadToMultipleOf != nil {
		cfg.PadToMultipleOf = *tc.PadToMultipleOf
	}
	if tc.MaxLength != nil {
		cfg.MaxLength = *tc.MaxLength
	}
	return cfg, nil
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

// conversations returns up to n held-out conversations ending with an assistant turn.
func conversations(test *data.Dataset, n int) ([][]tokenizer.Message, error) {
	if test == nil || test.Len() == 0 {
		return nil, errors.New("there is no test split to score")
	}
	var out [][]tokenizer.Message
	for i := 0; i < test.Len() && len(out) < n; i++ {
		ex, err := data.ParseRow(test.Rows[i], data.FormatMessages, data.ParseOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", test.Origins[i], err)
		}
		if len(ex.Messages) >= 2 && ex.Messages[len(ex.Messages)-1].Role == "assistant" {
			out = append(out, ex.Messages)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no held-out conversation ends with an assistant turn")
	}
	return out, nil
}

// historySink keeps the logged entries for the loss plot.
type historySink struct{ entries []map[string]float64 }

func (h *historySink) Log(_ int, m map[string]float64) error {
	h.entries = append(h.entries, m)
	return nil
}

// tensorBoardSink writes each logged value as a TensorBoard scalar, tagged like transformers.
type tensorBoardSink struct{ w *tbevent.Writer }

func newTensorBoardSink(outputDir string) (*tensorBoardSink, error) {
	dir, err := tbevent.DefaultLogDir(outputDir)
	if err != nil {
		return nil, err
	}
	w, err := tbevent.Create(dir)
	if err != nil {
		return nil, err
	}
	return &tensorBoardSink{w: w}, nil
}

func (s *tensorBoardSink) Log(step int, m map[string]float64) error {
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
