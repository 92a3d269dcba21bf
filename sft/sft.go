package sft

import (
	"context"
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/core/tensors"

	"handbook/data"
	"handbook/model"
	"handbook/train"
)

// Config holds SFT's arguments (TRL's SFTConfig) on top of the engine's. A zero field takes TRL's
// default; a zero Args.LearningRate is SFTConfig's 2e-5.
type Config struct {
	train.Args
	// PerDeviceTrainBatchSize is the rows each device takes per micro-batch
	// (per_device_train_batch_size; 0: 8). With a Placement, a micro-batch has that many rows per
	// data-parallel replica (train.BatchRows).
	PerDeviceTrainBatchSize int
	// PerDeviceEvalBatchSize is the rows of an evaluation batch, which runs on one device
	// (per_device_eval_batch_size; 0: 8).
	PerDeviceEvalBatchSize int
	// Packing packs tokenized samples into rows of MaxLength tokens (packing), with
	// PackingStrategy (packing_strategy; "": bfd).
	Packing         bool
	PackingStrategy data.PackStrategy
	// MaxLength is the packed row length (max_length); packing needs it. Samples are truncated when
	// tokenized (data.TokenizeConfig.MaxLength), not here.
	MaxLength int
	// PaddingFree concatenates a batch's samples into one row (padding_free; implied by packing,
	// as in TRL).
	PaddingFree bool
	// PadID pads batches (TRL: the tokenizer's pad token, else EOS; padding is masked, so 0 is
	// harmless).
	PadID int32
	// PadToMultipleOf rounds padded rows up (TRL's pad_to_multiple_of); it also bounds the number
	// of distinct batch shapes, each of which compiles its own graph.
	PadToMultipleOf int
	// OverwriteOutputDir starts from scratch even when output_dir holds a checkpoint.
	OverwriteOutputDir bool
}

// Trainer runs supervised fine-tuning of Model on tokenized samples.
type Trainer struct {
	Model  *model.Model
	Config Config
	// TrainSet and EvalSet are tokenized samples (data.Tokenize). EvalSet may be empty.
	TrainSet, EvalSet []data.Sample
	// TokenizerDir, when set, is copied (tokenizer.json, tokenizer_config.json, …) into the output.
	TokenizerDir string
	// Adapter, when set (a *lora.Adapter), is what trains: checkpoints and the output directory
	// hold the adapter alone. nil: a full fine-tune.
	Adapter train.Adapter
	// Placement spreads each optimizer step over devices (a *zero.Strategy); nil, or a nil
	// *zero.Strategy: one device. PerDeviceTrainBatchSize stays per device (train.BatchRows).
	Placement train.Placement
	// Sinks and Progress are passed to the engine.
	Sinks    []train.Sink
	Progress func(step, total int, loss float64)
}

// Result is a finished run's summary, as train_results.json records it.
type Result struct {
	train.Result
	ResumedFrom string
	PackStats   *data.PackStats
}

// Train runs the training (resuming from the newest checkpoint in output_dir unless
// OverwriteOutputDir) and saves the final model at output_dir.
func (t *Trainer) Train(ctx context.Context) (Result, error) {
	cfg, err := t.Config.withDefaults()
	if err != nil {
		return Result{}, fmt.Errorf("sft: %w", err)
	}
	if t.Model == nil {
		return Result{}, fmt.Errorf("sft: no model (Trainer.Model)")
	}
	var res Result
	trainSamples := t.TrainSet
	if cfg.Packing {
		packed, stats, err := data.Pack(trainSamples, data.PackConfig{SeqLength: cfg.MaxLength, Strategy: cfg.PackingStrategy})
		if err != nil {
			return Result{}, fmt.Errorf("sft: %w", err)
		}
		trainSamples, res.PackStats = packed, &stats
		cfg.PaddingFree = true
	}
	if len(trainSamples) == 0 {
		return Result{}, fmt.Errorf("sft: no training sample")
	}
	rows, err := train.BatchRows(t.Placement, cfg.PerDeviceTrainBatchSize)
	if err != nil {
		return Result{}, fmt.Errorf("sft: %w", err)
	}
	collate := data.CollateConfig{PadID: cfg.PadID, PaddingFree: cfg.PaddingFree, PadToMultipleOf: cfg.PadToMultipleOf}
	trainBatches := &batches{samples: trainSamples, collate: collate,
		sampler: data.Sampler{N: len(trainSamples), BatchSize: rows, Seed: cfg.DataSeed, Shuffle: true,
			EvenBatches: rows > cfg.PerDeviceTrainBatchSize}}
	var evalBatches train.Batches
	if len(t.EvalSet) > 0 {
		evalBatches = &batches{samples: t.EvalSet, collate: data.CollateConfig{PadID: cfg.PadID, PadToMultipleOf: cfg.PadToMultipleOf},
			sampler: data.Sampler{N: len(t.EvalSet), BatchSize: cfg.PerDeviceEvalBatchSize}}
	}

	adapter := train.OrNil(t.Adapter)
	engine := &train.Engine{Model: t.Model, Objective: train.CausalLM{}, Args: cfg.Args, Adapter: adapter,
		Placement: t.Placement, Sinks: slices.Clone(t.Sinks), Progress: t.Progress}
	out, err := engine.OpenOutputDir(cfg.OverwriteOutputDir, trainBatches.Len())
	if err != nil {
		return Result{}, fmt.Errorf("sft: %w", err)
	}
	defer out.Close()
	if out.NothingToDo {
		res.Result = out.Result
		return res, nil
	}
	res.ResumedFrom = out.ResumedFrom
	engine.Sinks = append(engine.Sinks, out.Sink())
	res.Result, err = engine.Train(ctx, trainBatches, evalBatches)
	if err != nil {
		return res, fmt.Errorf("sft: %w", err)
	}
	final := train.Output{Dir: cfg.OutputDir, Model: t.Model, Weights: adapter, TokenizerDir: t.TokenizerDir,
		SamplesPerStep: rows * max(1, cfg.GradientAccumulationSteps)}
	if err := final.Save(res.Result); err != nil {
		return res, fmt.Errorf("sft: %w", err)
	}
	return res, nil
}

// DefaultLearningRate is TRL's SFTConfig learning_rate, the trainer's for a zero
// Args.LearningRate.
const DefaultLearningRate = 2e-5

// withDefaults fills the zero fields with TRL's defaults and rejects what no run can use, naming
// the TRL key and the field.
func (c Config) withDefaults() (Config, error) {
	if err := train.TrainerDefaults(&c.Args, DefaultLearningRate, &c.PerDeviceTrainBatchSize, &c.PerDeviceEvalBatchSize); err != nil {
		return c, err
	}
	switch {
	case c.Packing && c.MaxLength <= 0:
		return c, fmt.Errorf("packing needs max_length > 0, got %d (Config.MaxLength; TRL's default is 1024)", c.MaxLength)
	case c.PadToMultipleOf < 0:
		return c, fmt.Errorf("pad_to_multiple_of must not be negative, got %d (Config.PadToMultipleOf)", c.PadToMultipleOf)
	}
	return c, nil
}

// batches adapts data's sampler and collator to the engine's Batches.
type batches struct {
	samples []data.Sample
	sampler data.Sampler
	collate data.CollateConfig
}

func (b *batches) Len() int { return b.sampler.Steps() }

func (b *batches) Batch(epoch, index int) (map[string]*tensors.Tensor, error) {
	idx, err := b.sampler.Batch(epoch, index)
	if err != nil {
		return nil, err
	}
	picked := make([]data.Sample, len(idx))
	for i, j := range idx {
		picked[i] = b.samples[j]
	}
	batch, err := data.Collate(picked, b.collate)
	if err != nil {
		return nil, err
	}
	out := map[string]*tensors.Tensor{
		"input_ids":      rows(batch.InputIDs),
		"labels":         rows(batch.Labels),
		"attention_mask": rows(batch.AttentionMask),
		"position_ids":   rows(batch.PositionIDs),
	}
	// Only padding-free rows (packing implies it) hold several sequences. Otherwise the attention
	// mask says all the segments would, and without them a fused attention kernel (causal plus
	// padding) can run; the loss and gradients are the same (padded positions get no gradient).
	if b.collate.PaddingFree {
		out["segment_ids"] = rows(batch.SegmentIDs)
	}
	return out, nil
}

func rows(r [][]int32) *tensors.Tensor {
	flat := make([]int32, 0, len(r)*len(r[0]))
	for _, row := range r {
		flat = append(flat, row...)
	}
	return tensors.FromFlatDataAndDimensions(flat, len(r), len(r[0]))
}
