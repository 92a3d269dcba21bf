package dpo

import (
	"context"
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/core/tensors"

	"handbook/data"
	"handbook/model"
	"handbook/train"
)

// RunArgs are the batching and output arguments DPO and ORPO share (TRL's DPOConfig / ORPOConfig
// on top of TrainingArguments). A zero field takes TRL's default.
type RunArgs struct {
	// PerDeviceTrainBatchSize is the pairs each device takes per micro-batch
	// (per_device_train_batch_size; 0: 8). With a Placement, a micro-batch has that many pairs per
	// data-parallel replica (train.BatchRows).
	PerDeviceTrainBatchSize int
	// PerDeviceEvalBatchSize is the pairs of an evaluation batch, which runs on one device
	// (per_device_eval_batch_size; 0: 8).
	PerDeviceEvalBatchSize int
	// MaxLength cuts each prompt+completion row (max_length; 0: no limit — TRL's default is 1024,
	// which the recipe bridge sets), keeping Truncation's end (truncation_mode; "": keep_start).
	MaxLength  int
	Truncation data.Truncation
	// PadID pads rows (TRL: the pad token, else EOS); PadToMultipleOf rounds row lengths up,
	// bounding the number of distinct shapes (each compiles its own graph).
	PadID           int32
	PadToMultipleOf int
	// OverwriteOutputDir starts from scratch even when output_dir holds a checkpoint.
	OverwriteOutputDir bool
}

// Config is TRL's DPOConfig: the engine's arguments, the loss, batching and the reference policy.
// A zero field takes TRL's default: a zero Args.LearningRate is 1e-6, a zero LossConfig.Beta 0.1
// and an empty LossConfig.LossType sigmoid, so Config{Args: train.Args{OutputDir: dir}} is
// DPOConfig(output_dir=dir).
type Config struct {
	train.Args
	LossConfig
	RunArgs
	// PrecomputeRefLogProbs scores every pair with the reference once before training (and the
	// eval set before evaluating), so no reference is kept during training.
	PrecomputeRefLogProbs bool
	// PrecomputeRefBatchSize is the batch size of that pass (default: the train/eval batch size).
	PrecomputeRefBatchSize int
}

// Trainer runs DPO on Model. The reference policy is, in order of precedence:
//   - TrainRefLogps / EvalRefLogps, or the pairs' own RefLogps: log-probs supplied by the dataset
//     (ref_chosen_logps and ref_rejected_logps columns);
//   - Config.PrecomputeRefLogProbs: one pass of the reference (RefModel, else the Adapter's base
//     decoder on the policy's weights, else the policy itself before training) over the data
//     before training;
//   - with an Adapter: the policy's own weights through the adapter-disabled decoder
//     (Adapter.BaseDecoder), in the training graph under StopGradient — no second copy in memory;
//   - RefModel: a separate frozen model (ref_model), scored in its own forward pass per batch;
//   - none of these: a frozen copy of the policy's starting weights, as TRL loads when
//     ref_model is None.
//
// The reference never gets gradients or optimizer state.
type Trainer struct {
	Model  *model.Model
	Config Config
	// TrainSet and EvalSet are tokenized pairs (data.TokenizePreference). EvalSet may be empty.
	TrainSet, EvalSet []data.PreferenceSample
	// TrainRefLogps and EvalRefLogps, when non-nil, are reference log-probs, one per pair of
	// TrainSet / EvalSet. nil takes them from the pairs themselves (PreferenceSample.RefLogps: a
	// dataset's ref_chosen_logps and ref_rejected_logps columns) when every pair has them.
	TrainRefLogps, EvalRefLogps []RefLogps
	// RefModel is a separate frozen reference (ref_model); it must share the policy's vocabulary.
	RefModel *model.Model
	// Adapter, when set (a *lora.Adapter), is what trains: checkpoints and the output directory
	// hold the adapter alone, and the reference is the base model with the adapter disabled.
	// nil: a full fine-tune.
	Adapter train.Adapter
	// Placement spreads each optimizer step over devices (a *zero.Strategy); nil, or a nil
	// *zero.Strategy: one device. PerDeviceTrainBatchSize stays per device (train.BatchRows).
	Placement train.Placement
	// TokenizerDir, when set, is copied (tokenizer.json, tokenizer_config.json, …) into the output.
	TokenizerDir string
	// Sinks and Progress are passed to the engine.
	Sinks    []train.Sink
	Progress func(step, total int, loss float64)
}

// Result is a finished run's summary, as train_results.json records it.
type Result struct {
	train.Result
	ResumedFrom string
}

// Train runs DPO (resuming from the newest checkpoint in output_dir unless OverwriteOutputDir)
// and saves the final model at output_dir.
func (t *Trainer) Train(ctx context.Context) (Result, error) {
	cfg := t.Config
	loss := cfg.LossConfig
	if loss.Beta == 0 {
		loss.Beta = DefaultBeta
	}
	if err := loss.Validate(); err != nil {
		return Result{}, fmt.Errorf("dpo: %w", err)
	}
	args, ra, err := withDefaults(cfg.Args, cfg.RunArgs)
	if err != nil {
		return Result{}, fmt.Errorf("dpo: %w", err)
	}
	if err := checkSets(t.Model, t.TrainSet, t.EvalSet); err != nil {
		return Result{}, fmt.Errorf("dpo: %w", err)
	}
	trainRef, err := refLogps(t.TrainRefLogps, t.TrainSet, "training")
	if err != nil {
		return Result{}, fmt.Errorf("dpo: %w", err)
	}
	evalRef, err := refLogps(t.EvalRefLogps, t.EvalSet, "evaluation")
	if err != nil {
		return Result{}, fmt.Errorf("dpo: %w", err)
	}
	if t.RefModel != nil && t.RefModel.Config.VocabSize != t.Model.Config.VocabSize {
		return Result{}, fmt.Errorf("dpo: ref_model vocabulary %d differs from the policy's %d", t.RefModel.Config.VocabSize, t.Model.Config.VocabSize)
	}
	sampler, err := trainSampler(len(t.TrainSet), ra, args.DataSeed, t.Placement)
	if err != nil {
		return Result{}, fmt.Errorf("dpo: %w", err)
	}
	collate := data.CollateConfig{PadID: ra.PadID, PadToMultipleOf: ra.PadToMultipleOf, MaxLength: ra.MaxLength, Truncation: ra.Truncation}
	trainB := &pairBatches{pairs: t.TrainSet, ref: trainRef, collate: collate, sampler: sampler}
	var evalB *pairBatches
	if len(t.EvalSet) > 0 {
		evalB = &pairBatches{pairs: t.EvalSet, ref: evalRef, collate: collate,
			sampler: data.Sampler{N: len(t.EvalSet), BatchSize: ra.PerDeviceEvalBatchSize}}
	}
	obj := Objective{LossConfig: loss}
	adapter := train.OrNil(t.Adapter)

	// The reference is settled before any checkpoint is resumed: it is the policy's start.
	needsRef := trainB.ref == nil || (evalB != nil && evalB.ref == nil)
	switch {
	case !needsRef:
	case cfg.PrecomputeRefLogProbs:
		refM, dec := t.Model, t.Model.Decoder
		switch {
		case t.RefModel != nil:
			refM, dec = t.RefModel, t.RefModel.Decoder
		case adapter != nil:
			dec = adapter.BaseDecoder()
		}
		s, err := newScorer(refM, dec)
		if err != nil {
			return Result{}, fmt.Errorf("dpo: %w", err)
		}
		defer s.finalize()
		for _, b := range []*pairBatches{trainB, evalB} {
			if b == nil || b.ref != nil {
				continue
			}
			size := cfg.PrecomputeRefBatchSize
			if size <= 0 {
				size = b.sampler.BatchSize
			}
			if b.ref, err = s.precompute(ctx, b.pairs, collate, size); err != nil {
				return Result{}, fmt.Errorf("dpo: precompute reference log-probs: %w", err)
			}
		}
	case adapter != nil && t.RefModel == nil:
		obj.Reference = adapter.BaseDecoder()
	default:
		refM := t.RefModel
		if refM == nil {
			var err error
			if refM, err = copyModel(t.Model); err != nil {
				return Result{}, fmt.Errorf("dpo: %w", err)
			}
		}
		s, err := newScorer(refM, refM.Decoder)
		if err != nil {
			return Result{}, fmt.Errorf("dpo: %w", err)
		}
		defer s.finalize()
		trainB.scorer = s
		if evalB != nil {
			evalB.scorer = s
		}
	}
	var eval train.Batches
	if evalB != nil {
		eval = evalB
	}
	return run(ctx, "dpo", t.Model, obj, args, ra, trainB, eval, engineHooks{adapter, t.Placement, t.Sinks, t.Progress, t.TokenizerDir})
}

// ORPOConfig is TRL's ORPOConfig: the engine's arguments, λ and batching. A zero field takes TRL's
// default: a zero Args.LearningRate is 1e-6, a zero Beta 0.1.
type ORPOConfig struct {
	train.Args
	RunArgs
	// Beta is λ, the weight of the odds-ratio term (beta; 0: 0.1); it must be positive.
	Beta float64
}

// ORPOTrainer runs ORPO on Model: no reference model.
type ORPOTrainer struct {
	Model             *model.Model
	Config            ORPOConfig
	TrainSet, EvalSet []data.PreferenceSample
	// Adapter, Placement, TokenizerDir, Sinks and Progress are Trainer's.
	Adapter      train.Adapter
	Placement    train.Placement
	TokenizerDir string
	Sinks        []train.Sink
	Progress     func(step, total int, loss float64)
}

// Train runs ORPO (resuming as Trainer.Train does) and saves the final model at output_dir.
func (t *ORPOTrainer) Train(ctx context.Context) (Result, error) {
	cfg := t.Config
	beta := cfg.Beta
	if beta == 0 {
		beta = DefaultBeta
	}
	if err := checkBeta(beta, "ORPOConfig.Beta"); err != nil {
		return Result{}, fmt.Errorf("orpo: %w", err)
	}
	if err := checkSets(t.Model, t.TrainSet, t.EvalSet); err != nil {
		return Result{}, fmt.Errorf("orpo: %w", err)
	}
	args, ra, err := withDefaults(cfg.Args, cfg.RunArgs)
	if err != nil {
		return Result{}, fmt.Errorf("orpo: %w", err)
	}
	sampler, err := trainSampler(len(t.TrainSet), ra, args.DataSeed, t.Placement)
	if err != nil {
		return Result{}, fmt.Errorf("orpo: %w", err)
	}
	collate := data.CollateConfig{PadID: ra.PadID, PadToMultipleOf: ra.PadToMultipleOf, MaxLength: ra.MaxLength, Truncation: ra.Truncation}
	trainB := &pairBatches{pairs: t.TrainSet, collate: collate, sampler: sampler}
	var eval train.Batches
	if len(t.EvalSet) > 0 {
		eval = &pairBatches{pairs: t.EvalSet, collate: collate, sampler: data.Sampler{N: len(t.EvalSet), BatchSize: ra.PerDeviceEvalBatchSize}}
	}
	return run(ctx, "orpo", t.Model, ORPO{Beta: beta}, args, ra, trainB, eval, engineHooks{train.OrNil(t.Adapter), t.Placement, t.Sinks, t.Progress, t.TokenizerDir})
}

// refLogps returns the reference log-probs of a set: given (one per pair), else the pairs' own
// (every pair has them, or none: nil).
func refLogps(given []RefLogps, pairs []data.PreferenceSample, set string) ([]RefLogps, error) {
	if given != nil {
		if len(given) != len(pairs) {
			return nil, fmt.Errorf("%d reference log-probs for %d %s pairs", len(given), len(pairs), set)
		}
		return given, nil
	}
	var out []RefLogps
	for i, p := range pairs {
		if (p.RefLogps != nil) != (pairs[0].RefLogps != nil) {
			return nil, fmt.Errorf("%s pair %d: ref_chosen_logps/ref_rejected_logps are present in some pairs only", set, i)
		}
		if p.RefLogps != nil {
			out = append(out, RefLogps{Chosen: p.RefLogps[0], Rejected: p.RefLogps[1]})
		}
	}
	return out, nil
}

// trainSampler orders n training pairs into micro-batches of PerDeviceTrainBatchSize pairs per
// device: times the placement's data-parallel replicas, the final partial batch completed
// (accelerate's even_batches) when there are several.
func trainSampler(n int, ra RunArgs, seed uint64, p train.Placement) (data.Sampler, error) {
	pairs, err := train.BatchRows(p, ra.PerDeviceTrainBatchSize)
	if err != nil {
		return data.Sampler{}, err
	}
	return data.Sampler{N: n, BatchSize: pairs, Seed: seed, Shuffle: true, EvenBatches: pairs > ra.PerDeviceTrainBatchSize}, nil
}

// DefaultLearningRate is TRL's DPOConfig and ORPOConfig learning_rate, the trainers' for a zero
// Args.LearningRate; DefaultBeta is their beta (DPO's β, ORPO's λ), for a zero Beta.
const (
	DefaultLearningRate = 1e-6
	DefaultBeta         = 0.1
)

// withDefaults fills the zero arguments with TRL's defaults and rejects what no run can use,
// naming the TRL key and the field.
func withDefaults(args train.Args, ra RunArgs) (train.Args, RunArgs, error) {
	if err := train.TrainerDefaults(&args, DefaultLearningRate, &ra.PerDeviceTrainBatchSize, &ra.PerDeviceEvalBatchSize); err != nil {
		return args, ra, err
	}
	switch {
	case ra.MaxLength < 0:
		return args, ra, fmt.Errorf("max_length must not be negative, got %d (Config.MaxLength)", ra.MaxLength)
	case ra.PadToMultipleOf < 0:
		return args, ra, fmt.Errorf("pad_to_multiple_of must not be negative, got %d (Config.PadToMultipleOf)", ra.PadToMultipleOf)
	}
	return args, ra, nil
}

// checkSets rejects what would silently train on nothing: no pairs, a pair without a prompt
// (its chosen and rejected share no prompt) or with an empty completion, ids outside the
// vocabulary.
func checkSets(m *model.Model, trainSet, evalSet []data.PreferenceSample) error {
	if m == nil {
		return fmt.Errorf("no model")
	}
	if len(trainSet) == 0 {
		return fmt.Errorf("no training pair")
	}
	vocab := int32(m.Config.VocabSize)
	for _, set := range []struct {
		name  string
		pairs []data.PreferenceSample
	}{{"training", trainSet}, {"evaluation", evalSet}} {
		for i, p := range set.pairs {
			switch {
			case len(p.PromptIDs) == 0:
				return fmt.Errorf("%s pair %d has an empty prompt: chosen and rejected must share a prompt", set.name, i)
			case len(p.ChosenIDs) == 0:
				return fmt.Errorf("%s pair %d has an empty chosen completion", set.name, i)
			case len(p.RejectedIDs) == 0:
				return fmt.Errorf("%s pair %d has an empty rejected completion", set.name, i)
			}
			for _, ids := range [][]int32{p.PromptIDs, p.ChosenIDs, p.RejectedIDs} {
				for _, id := range ids {
					if id < 0 || id >= vocab {
						return fmt.Errorf("%s pair %d has token id %d outside the vocabulary of %d", set.name, i, id, vocab)
					}
				}
			}
		}
	}
	return nil
}

// engineHooks are the Trainer fields passed through to the engine and the output.
type engineHooks struct {
	adapter      train.Adapter
	placement    train.Placement
	sinks        []train.Sink
	progress     func(step, total int, loss float64)
	tokenizerDir string
}

// run trains obj with the engine, resuming from output_dir's last checkpoint, and writes the
// output directory (the layout sft writes).
func run(ctx context.Context, name string, m *model.Model, obj train.Objective, args train.Args, ra RunArgs,
	trainB *pairBatches, evalB train.Batches, h engineHooks) (Result, error) {
	engine := &train.Engine{Model: m, Objective: obj, Args: args, Adapter: h.adapter,
		Placement: h.placement, Sinks: slices.Clone(h.sinks), Progress: h.progress}
	out, err := engine.OpenOutputDir(ra.OverwriteOutputDir, trainB.Len())
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", name, err)
	}
	defer out.Close()
	var res Result
	if out.NothingToDo {
		res.Result = out.Result
		return res, nil
	}
	res.ResumedFrom = out.ResumedFrom
	engine.Sinks = append(engine.Sinks, out.Sink())
	res.Result, err = engine.Train(ctx, trainB, evalB)
	if err != nil {
		return res, fmt.Errorf("%s: %w", name, err)
	}
	final := train.Output{Dir: args.OutputDir, Model: m, Weights: h.adapter, TokenizerDir: h.tokenizerDir,
		SamplesPerStep: trainB.sampler.BatchSize * max(1, args.GradientAccumulationSteps)}
	if err := final.Save(res.Result); err != nil {
		return res, fmt.Errorf("%s: %w", name, err)
	}
	return res, nil
}

// pairBatches adapts data's sampler and preference collator to the engine's Batches, adding the
// reference log-probs when they are stored (ref) or scored per batch (scorer).
type pairBatches struct {
	pairs   []data.PreferenceSample
	ref     []RefLogps
	scorer  *scorer
	sampler data.Sampler
	collate data.CollateConfig
}

func (b *pairBatches) Len() int { return b.sampler.Steps() }

func (b *pairBatches) Batch(epoch, index int) (map[string]*tensors.Tensor, error) {
	idx, err := b.sampler.Batch(epoch, index)
	if err != nil {
		return nil, err
	}
	picked := make([]data.PreferenceSample, len(idx))
	var ref []RefLogps
	if b.ref != nil {
		ref = make([]RefLogps, len(idx))
	}
	for i, j := range idx {
		picked[i] = b.pairs[j]
		if ref != nil {
			ref[i] = b.ref[j]
		}
	}
	batch, err := collatePairs(picked, ref, b.collate)
	if err != nil {
		return nil, err
	}
	if ref == nil && b.scorer != nil {
		if ref, err = b.scorer.score(batch); err != nil {
			return nil, err
		}
		addRef(batch, ref)
	}
	return batch, nil
}

// collatePairs builds the engine's input tensors of a preference batch, with the reference
// log-probs when ref is non-nil.
func collatePairs(pairs []data.PreferenceSample, ref []RefLogps, cfg data.CollateConfig) (map[string]*tensors.Tensor, error) {
	pb, err := data.CollatePreference(pairs, cfg)
	if err != nil {
		return nil, err
	}
	batch := map[string]*tensors.Tensor{
		"input_ids":      rows(pb.InputIDs),
		"labels":         rows(pb.Labels),
		"attention_mask": rows(pb.AttentionMask),
	}
	if ref != nil {
		addRef(batch, ref)
	}
	return batch, nil
}

func addRef(batch map[string]*tensors.Tensor, ref []RefLogps) {
	c, r := make([]float32, len(ref)), make([]float32, len(ref))
	for i, l := range ref {
		c[i], r[i] = float32(l.Chosen), float32(l.Rejected)
	}
	batch[RefChosenLogps] = tensors.FromFlatDataAndDimensions(c, len(c))
	batch[RefRejectedLogps] = tensors.FromFlatDataAndDimensions(r, len(r))
}

func rows(r [][]int32) *tensors.Tensor {
	flat := make([]int32, 0, len(r)*len(r[0]))
	for _, row := range r {
		flat = append(flat, row...)
	}
	return tensors.FromFlatDataAndDimensions(flat, len(r), len(r[0]))
}
