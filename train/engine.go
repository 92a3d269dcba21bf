package train

import (
	"context"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"

	"handbook/model"
)

// Args are the engine's training arguments, named after transformers' TrainingArguments (the key
// each field stands for is in its comment). A zero field takes transformers' default where it has
// one; fields whose zero value means something else say so.
type Args struct {
	// OutputDir receives checkpoints (output_dir); "" keeps none.
	OutputDir string
	// LearningRate is the peak learning rate (learning_rate; 0: transformers' 5e-5 — the trainers
	// put TRL's defaults first: SFT 2e-5, DPO and ORPO 1e-6).
	LearningRate float64
	// LRSchedulerType is a transformers scheduler name (lr_scheduler_type; "": linear).
	LRSchedulerType string
	// WarmupSteps is warmup_steps when ≥ 1 and warmup_ratio, a fraction of the total steps, when
	// below 1 (0: no warmup).
	WarmupSteps float64
	// MinLRRate is cosine_with_min_lr's floor as a fraction of LearningRate (lr_scheduler_kwargs
	// min_lr_rate).
	MinLRRate float64
	// NumTrainEpochs is the length of the run when MaxSteps ≤ 0 (num_train_epochs; 0: 3).
	NumTrainEpochs float64
	// MaxSteps, when > 0, is the number of optimizer steps (max_steps).
	MaxSteps int
	// GradientAccumulationSteps is the micro-batches per optimizer step
	// (gradient_accumulation_steps; 0: 1).
	GradientAccumulationSteps int
	// MaxGradNorm clips the global gradient norm (max_grad_norm); 0 disables clipping, as
	// max_grad_norm=0 does in transformers (whose default is 1).
	MaxGradNorm float64
	// Optimizer updates the weights (optim; nil: DefaultAdamW, transformers' adamw_torch).
	Optimizer Optimizer
	// Seed seeds the randomness of training graphs: an Adapter's dropout masks (seed; weights
	// are initialized before training, seeded where they are made: model.Init, lora.Attach).
	Seed uint64
	// DataSeed orders the training data, a fresh permutation each epoch (data_seed, which
	// transformers defaults to seed: set both for that).
	DataSeed uint64
	// LoggingSteps logs every that many steps (logging_steps; 0: only the last step).
	LoggingSteps int
	// LoggingFirstStep also logs the first step (logging_first_step).
	LoggingFirstStep bool
	// SaveSteps checkpoints every that many steps and at the last one (save_steps; 0: no
	// checkpoints).
	SaveSteps int
	// SaveTotalLimit keeps only the newest checkpoints (save_total_limit; 0: all).
	SaveTotalLimit int
	// EvalSteps evaluates every that many steps and at the last one (eval_steps; 0: no
	// evaluation during training).
	EvalSteps int
}

// DefaultLearningRate and DefaultNumTrainEpochs are transformers' TrainingArguments defaults, which
// the engine uses for a zero LearningRate and (without MaxSteps) a zero NumTrainEpochs.
const (
	DefaultLearningRate   = 5e-5
	DefaultNumTrainEpochs = 3
)

// Batches yields host batches by (epoch, index), deterministically, so a resumed run sees exactly
// the batches an uninterrupted one would. Each batch maps input names ("input_ids", "labels", …)
// to tensors.
type Batches interface {
	Len() int
	Batch(epoch, index int) (map[string]*tensors.Tensor, error)
}

// WeightsIO writes a checkpoint's weights to a directory and reads them back by weight name.
type WeightsIO interface {
	SaveWeights(dir string) error
	LoadWeights(dir string) (map[string]*tensors.Tensor, error)
}

// Sink receives the metrics of each logging step (transformers' log_history entries).
type Sink interface {
	Log(step int, metrics map[string]float64) error
}

// Engine trains a model's weights on an objective: micro-batch gradients accumulated and
// normalized by their units, global-norm clipping, AdamW with decay exclusion, the LR schedule,
// logging, evaluation and checkpoints with exact resume.
type Engine struct {
	Model     *model.Model
	Objective Objective
	Args      Args
	// Adapter, when set, is what trains (a *lora.Adapter): only its weights get gradients and
	// optimizer state, checkpoints hold it alone, and training graphs run its TrainingDecoder.
	// nil: a full fine-tune, checkpoints hold the whole model in Hugging Face's format.
	Adapter Adapter
	// Sinks get every logged entry; Progress, when set, is called after each optimizer step.
	Sinks    []Sink
	Progress func(step, total int, loss float64)
	// Placement, when set, spreads the optimizer step over a device mesh (a *zero.Strategy) with a
	// ShardedStep; evaluation and checkpoints see the gathered weights. nil (or a nil
	// *zero.Strategy): one device. Each batch of train is one micro-batch of the whole mesh (its
	// rows are split over the devices; trainers size it with BatchRows).
	Placement Placement

	trainable, frozen []string
	// optState holds each trainable weight's optimizer state, in Optimizer.StateNames order.
	optState [][]*tensors.Tensor
	// masters holds the float32 master copy of each trainable weight stored in 16 bits (nil for
	// float32 weights, which are their own master); see update.go.
	masters []*tensors.Tensor
	state   State
	graphs  map[string]*compiled
	sharded *ShardedStep
	// heapLimit is the soft memory limit Train set for the Go backend (memlimit.go).
	heapLimit heapLimit
}

// compiled is a cached graph; metricNames are filled when the graph is built, in output order.
type compiled struct {
	exec        *Exec
	metricNames []string
	// sized is set once the graph's temporary memory is known (tempBytes, 0 when the backend
	// gives no estimate); see memlimit.go.
	sized     bool
	tempBytes int64
}

// build compiles fn once per key. fn receives the compiled entry to record its metric names.
func (e *Engine) graph(key string, fn func(c *compiled) func([]*Node) []*Node) (*compiled, error) {
	if c, ok := e.graphs[key]; ok {
		return c, nil
	}
	if e.graphs == nil { // Evaluate may run before Train
		e.graphs = map[string]*compiled{}
	}
	c := &compiled{}
	exec, err := NewExec(e.Model.Backend(), fn(c))
	if err != nil {
		return nil, err
	}
	c.exec = exec
	e.graphs[key] = c
	return c, nil
}

// microStep is the body of a micro-batch graph, shared by the one-device and sharded steps. Its
// inputs are the trainable weights, the frozen weights, the gradients accumulated so far (unless
// first) and the batch's inputs in names order. It returns the objective's loss sum, units and
// metric sums, and the float32 gradients of the sum added to the accumulated ones.
func microStep(decoder *model.Decoder, obj Objective, adapter Adapter, seed uint64, trainableNames, frozenNames, names []string, first bool,
	inputs []*Node) (sum, count *Node, metrics map[string]*Node, grads []*Node) {
	nt, nf := len(trainableNames), len(frozenNames)
	trainable, frozen, rest := inputs[:nt], inputs[nt:nt+nf], inputs[nt+nf:]
	var acc []*Node
	if !first {
		acc, rest = rest[:nt], rest[nt:]
	}
	p := model.ParamsFromNodes(trainableNames, trainable)
	for i, n := range frozenNames {
		p[n] = StopGradient(frozen[i])
	}
	b := map[string]*Node{}
	for i, n := range names {
		b[n] = rest[i]
	}
	dec := *decoder
	dec.FastGradients = true // a training graph: hand-written gradients on the Go backend
	training := &dec
	if adapter != nil {
		training = adapter.TrainingDecoder(training, seed)
	}
	sum, count, metrics = obj.Loss(training, p, b)
	grads = Gradient(sum, trainable...)
	for i := range grads {
		grads[i] = ConvertDType(grads[i], dtypes.Float32)
		if !first {
			grads[i] = Add(acc[i], grads[i])
		}
	}
	return sum, count, metrics, grads
}

// run executes a loss graph: args first, then the batch's inputs in names order. It returns the
// outputs and the metric names of their loss part.
func (c *compiled) run(args []any, batch map[string]*tensors.Tensor, names []string) ([]*tensors.Tensor, []string, error) {
	for _, n := range names {
		args = append(args, batch[n])
	}
	out, err := c.exec.Exec(args...)
	if err != nil {
		return nil, nil, err
	}
	return out, c.metricNames, nil
}

// lossOutputs turns an objective's result into graph outputs: sum, count, then metrics sorted by name.
func lossOutputs(c *compiled, sum, count *Node, metrics map[string]*Node) []*Node {
	c.metricNames = c.metricNames[:0]
	for n := range metrics {
		c.metricNames = append(c.metricNames, n)
	}
	sort.Strings(c.metricNames)
	outs := []*Node{ConvertDType(sum, dtypes.Float32), ConvertDType(count, dtypes.Float32)}
	for _, n := range c.metricNames {
		outs = append(outs, ConvertDType(metrics[n], dtypes.Float32))
	}
	return outs
}

// State is what a checkpoint records besides weights and optimizer moments.
type State struct {
	GlobalStep int
	Epoch      float64
	// NextBatch is the data position: the epoch and index of the next micro-batch.
	NextEpoch, NextIndex int
	LogHistory           []map[string]float64
	MaxSteps             int
	TotalTokens          float64
}

// setDefaults fills the arguments left zero with transformers' defaults.
func (a *Args) setDefaults() {
	if a.LearningRate == 0 {
		a.LearningRate = DefaultLearningRate
	}
	if a.MaxSteps <= 0 && a.NumTrainEpochs == 0 {
		a.NumTrainEpochs = DefaultNumTrainEpochs
	}
	if a.GradientAccumulationSteps == 0 {
		a.GradientAccumulationSteps = 1
	}
	if a.LRSchedulerType == "" {
		a.LRSchedulerType = "linear"
	}
	if a.Optimizer == nil {
		a.Optimizer = DefaultAdamW()
	}
}

// Validate reports arguments no run can use, naming the transformers key and the field. Zero
// fields count as their defaults.
func (a Args) Validate() error {
	a.setDefaults()
	switch {
	case !(a.LearningRate > 0) || math.IsInf(a.LearningRate, 0):
		return fmt.Errorf("learning_rate must be positive, got %g (Args.LearningRate)", a.LearningRate)
	case a.MaxSteps <= 0 && (!(a.NumTrainEpochs > 0) || math.IsInf(a.NumTrainEpochs, 0)):
		return fmt.Errorf("num_train_epochs must be positive when max_steps is not set, got %g (Args.NumTrainEpochs, or set Args.MaxSteps)", a.NumTrainEpochs)
	case a.GradientAccumulationSteps < 0:
		return fmt.Errorf("gradient_accumulation_steps must be positive, got %d (Args.GradientAccumulationSteps)", a.GradientAccumulationSteps)
	case a.WarmupSteps < 0:
		return fmt.Errorf("warmup_steps must not be negative, got %g (Args.WarmupSteps)", a.WarmupSteps)
	case a.LoggingSteps < 0 || a.SaveSteps < 0 || a.EvalSteps < 0 || a.SaveTotalLimit < 0:
		return fmt.Errorf("logging_steps, save_steps, eval_steps and save_total_limit must not be negative, got %d, %d, %d and %d (Args.LoggingSteps, SaveSteps, EvalSteps, SaveTotalLimit)",
			a.LoggingSteps, a.SaveSteps, a.EvalSteps, a.SaveTotalLimit)
	}
	return nil
}

// TrainerDefaults fills what every trainer's config may leave zero — the learning rate with the
// trainer's TRL default lr, per_device_train_batch_size and per_device_eval_batch_size with 8 —
// and rejects what no trainer can run, naming the TRL key and the field. Trainers call it before
// their own checks.
func TrainerDefaults(args *Args, lr float64, trainBatch, evalBatch *int) error {
	if args.LearningRate == 0 {
		args.LearningRate = lr
	}
	if *trainBatch == 0 {
		*trainBatch = 8
	}
	if *evalBatch == 0 {
		*evalBatch = 8
	}
	switch {
	case args.OutputDir == "":
		return fmt.Errorf("output_dir is required (Config.OutputDir)")
	case *trainBatch < 0:
		return fmt.Errorf("per_device_train_batch_size must be positive, got %d (Config.PerDeviceTrainBatchSize)", *trainBatch)
	case *evalBatch < 0:
		return fmt.Errorf("per_device_eval_batch_size must be positive, got %d (Config.PerDeviceEvalBatchSize)", *evalBatch)
	}
	return args.Validate()
}

func (e *Engine) init() error {
	if e.Model == nil || e.Objective == nil {
		return fmt.Errorf("a model and an objective are required (Engine.Model, Engine.Objective)")
	}
	if err := e.Args.Validate(); err != nil {
		return err
	}
	a := &e.Args
	a.setDefaults()
	e.trainable, e.frozen = nil, nil
	for _, n := range e.Model.Weights.Names() {
		if e.isTrainable(n) {
			e.trainable = append(e.trainable, n)
		} else {
			e.frozen = append(e.frozen, n)
		}
	}
	if len(e.trainable) == 0 {
		return fmt.Errorf("no trainable weights")
	}
	if e.optState == nil {
		for _, n := range e.trainable {
			shape := shapes.Make(dtypes.Float32, e.Model.Weights[n].Shape().Dimensions...)
			state := make([]*tensors.Tensor, len(a.Optimizer.StateNames()))
			for i := range state {
				state[i] = tensors.FromShape(shape)
			}
			e.optState = append(e.optState, state)
		}
	}
	if e.masters == nil {
		e.masters = make([]*tensors.Tensor, len(e.trainable))
		for i, n := range e.trainable {
			if w := e.Model.Weights[n]; needsMaster(w.DType()) {
				var err error
				if e.masters[i], err = float32Copy(w); err != nil {
					return fmt.Errorf("float32 master of %s: %w", n, err)
				}
			}
		}
	}
	e.graphs = map[string]*compiled{}
	return e.initSharded()
}

// adapter is the Engine's Adapter, nil for a full fine-tune (a nil *lora.Adapter included).
func (e *Engine) adapter() Adapter { return OrNil(e.Adapter) }

// isTrainable reports whether the optimizer updates a weight: every weight of a full fine-tune,
// the adapter's otherwise.
func (e *Engine) isTrainable(name string) bool {
	a := e.adapter()
	return a == nil || a.Trainable(name)
}

// TotalSteps is the number of optimizer steps: MaxSteps, else ceil(epochs × updates per epoch).
func (e *Engine) TotalSteps(batchesPerEpoch int) int {
	a := e.Args
	a.setDefaults()
	if a.MaxSteps > 0 {
		return a.MaxSteps
	}
	accum := max(1, a.GradientAccumulationSteps)
	perEpoch := max(1, (batchesPerEpoch+accum-1)/accum)
	return int(math.Ceil(a.NumTrainEpochs * float64(perEpoch)))
}

// Result summarizes a finished training run.
type Result struct {
	GlobalStep int
	// StepsRun counts the optimizer steps this run took (fewer than GlobalStep after a resume).
	StepsRun int
	// NothingToDo is set when the output directory already held this run, finished: nothing
	// was trained or written (OpenOutputDir).
	NothingToDo  bool
	TrainLoss    float64
	Runtime      time.Duration
	TokensPerSec float64
	State        State
}

// Train runs (or resumes, when State was restored by Resume) until the total step count.
func (e *Engine) Train(ctx context.Context, train Batches, eval Batches) (Result, error) {
	if err := e.init(); err != nil {
		return Result{}, fmt.Errorf("train: %w", err)
	}
	defer e.finalize()
	defer e.releaseHeapLimit()
	if train.Len() == 0 {
		return Result{}, fmt.Errorf("train: the training set has no batch")
	}
	total := e.TotalSteps(train.Len())
	e.state.MaxSteps = total
	sched, err := NewSchedule(e.Args.LRSchedulerType, StepCount(e.Args.WarmupSteps, total), total, e.Args.MinLRRate)
	if err != nil {
		return Result{}, fmt.Errorf("train: %w", err)
	}
	start := time.Now()
	var windowLoss float64
	var windowSteps int
	windowMetrics := map[string]float64{}
	var runLoss float64
	var runSteps int
	var tokens float64
	for e.state.GlobalStep < total {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("train: stopped before step %d: %w", e.state.GlobalStep+1, err)
		}
		step := e.state.GlobalStep + 1
		lr := e.Args.LearningRate * sched.Factor(step-1)
		loss, metrics, _, seen, err := e.optimizerStep(train, step, lr)
		if err != nil {
			return Result{}, fmt.Errorf("train: step %d: %w", step, err)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return Result{}, fmt.Errorf("train: step %d: loss is %v; stopping (the last checkpoint is intact)", step, loss)
		}
		e.state.GlobalStep = step
		e.state.Epoch = float64(e.state.NextEpoch) + float64(e.state.NextIndex)/float64(train.Len())
		tokens += seen
		e.state.TotalTokens += seen
		windowLoss += loss
		windowSteps++
		runLoss += loss
		runSteps++
		for k, v := range metrics {
			windowMetrics[k] += v
		}
		if e.Progress != nil {
			e.Progress(step, total, loss)
		}
		logNow := (e.Args.LoggingSteps > 0 && step%e.Args.LoggingSteps == 0) || (step == 1 && e.Args.LoggingFirstStep) || step == total
		if logNow {
			entry := map[string]float64{
				// transformers logs the learning rate the step used (before the scheduler advances).
				"loss": windowLoss / float64(windowSteps), "learning_rate": lr,
				"epoch": e.state.Epoch, "step": float64(step), "num_tokens": e.state.TotalTokens,
			}
			for k, v := range windowMetrics {
				entry[k] = v / float64(windowSteps)
			}
			if err := e.log(step, entry); err != nil {
				return Result{}, err
			}
			windowLoss, windowSteps, windowMetrics = 0, 0, map[string]float64{}
		}
		if eval != nil && e.Args.EvalSteps > 0 && (step%e.Args.EvalSteps == 0 || step == total) {
			if err := e.syncSharded(); err != nil {
				return Result{}, fmt.Errorf("train: %w", err)
			}
			em, err := e.Evaluate(ctx, eval)
			if err != nil {
				return Result{}, fmt.Errorf("train: evaluation at step %d: %w", step, err)
			}
			entry := map[string]float64{"epoch": e.state.Epoch, "step": float64(step)}
			for k, v := range em {
				entry["eval_"+k] = v
			}
			if err := e.log(step, entry); err != nil {
				return Result{}, err
			}
		}
		// transformers also checkpoints the last step whenever it saves by steps.
		if e.Args.SaveSteps > 0 && (step%e.Args.SaveSteps == 0 || step == total) && e.Args.OutputDir != "" {
			if err := e.syncSharded(); err != nil {
				return Result{}, fmt.Errorf("train: %w", err)
			}
			if err := e.SaveCheckpoint(); err != nil {
				return Result{}, fmt.Errorf("train: %w", err)
			}
			e.notifySaved(step)
		}
	}
	if err := e.syncSharded(); err != nil {
		return Result{}, fmt.Errorf("train: %w", err)
	}
	elapsed := time.Since(start)
	res := Result{GlobalStep: e.state.GlobalStep, StepsRun: runSteps, Runtime: elapsed, State: e.state}
	if runSteps > 0 {
		res.TrainLoss = runLoss / float64(runSteps)
	}
	if elapsed > 0 {
		res.TokensPerSec = tokens / elapsed.Seconds()
	}
	return res, nil
}

// notifySaved tells the sinks that observe saves where the step's checkpoint is.
func (e *Engine) notifySaved(step int) {
	dir := filepath.Join(e.Args.OutputDir, checkpointPrefix+strconv.Itoa(step))
	for _, s := range e.Sinks {
		if o, ok := s.(SaveObserver); ok {
			o.Saved(step, dir)
		}
	}
}

func (e *Engine) log(step int, entry map[string]float64) error {
	e.state.LogHistory = append(e.state.LogHistory, entry)
	for _, s := range e.Sinks {
		if err := s.Log(step, entry); err != nil {
			return fmt.Errorf("train: logging step %d: %w", step, err)
		}
	}
	return nil
}

// optimizerStep runs the accumulated micro-batches of one optimizer step and applies the update.
// It returns the step's loss (summed loss / units across micro-batches), metrics per unit (plus
// grad_norm before clipping) and the number of units.
func (e *Engine) optimizerStep(train Batches, step int, lr float64) (loss float64, metrics map[string]float64, units, tokens float64, err error) {
	if e.sharded != nil {
		return e.shardedOptimizerStep(train, step, lr)
	}
	accum := e.Args.GradientAccumulationSteps
	var grads []*tensors.Tensor
	var lossSum float64
	metrics = map[string]float64{}
	for micro := 0; micro < accum; micro++ {
		batch, err := train.Batch(e.state.NextEpoch, e.state.NextIndex)
		if err != nil {
			return 0, nil, 0, 0, err
		}
		e.state.NextIndex++
		if e.state.NextIndex >= train.Len() {
			e.state.NextEpoch++
			e.state.NextIndex = 0
		}
		out, names, err := e.runMicro(batch, grads)
		if err != nil {
			return 0, nil, 0, 0, err
		}
		lossSum += float64(tensors.ToScalar[float32](out[0]))
		units += float64(tensors.ToScalar[float32](out[1]))
		for i, n := range names {
			metrics[n] += float64(tensors.ToScalar[float32](out[2+i]))
		}
		grads = out[2+len(names):]
		seen, err := inputTokens(batch)
		if err != nil {
			return 0, nil, 0, 0, err
		}
		tokens += seen
	}
	if units == 0 {
		return 0, nil, 0, 0, fmt.Errorf("no trainable unit (token) in the step's %d micro-batch(es)", accum)
	}
	norm, err := e.apply(grads, step, lr, units)
	if err != nil {
		return 0, nil, 0, 0, err
	}
	for k := range metrics {
		metrics[k] /= units
	}
	metrics["grad_norm"] = norm
	return lossSum / units, metrics, units, tokens, nil
}

// inputTokens counts a batch's real input tokens (attention_mask ones, else every input id), the
// num_tokens transformers reports.
func inputTokens(batch map[string]*tensors.Tensor) (float64, error) {
	if mask, ok := batch["attention_mask"]; ok {
		vals, err := tensors.CopyFlatData[int32](mask)
		if err != nil {
			return 0, fmt.Errorf("attention_mask: %w", err)
		}
		var n float64
		for _, v := range vals {
			n += float64(v)
		}
		return n, nil
	}
	ids, ok := batch["input_ids"]
	if !ok {
		return 0, fmt.Errorf("batch has no input_ids")
	}
	return float64(ids.Shape().Size()), nil
}

// sortedNames returns a map's keys, sorted: the order graphs receive batch inputs and weights.
func sortedNames[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// runMicro computes one micro-batch's loss sum, units, metric sums and the gradients of the loss
// sum added to grads (nil: the first micro-batch).
func (e *Engine) runMicro(batch map[string]*tensors.Tensor, grads []*tensors.Tensor) ([]*tensors.Tensor, []string, error) {
	inputNames := sortedNames(batch)
	first := grads == nil
	nt, nf := len(e.trainable), len(e.frozen)
	key := fmt.Sprintf("micro first=%v %s", first, strings.Join(inputNames, ","))
	c, err := e.graph(key, func(c *compiled) func([]*Node) []*Node {
		return func(inputs []*Node) []*Node {
			sum, count, metrics, g := microStep(e.Model.Decoder, e.Objective, e.adapter(), e.Args.Seed, e.trainable, e.frozen, inputNames, first, inputs)
			outs := lossOutputs(c, sum, count, metrics)
			return append(outs, g...)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	if !c.sized {
		var inputShapes []shapes.Shape
		for _, t := range append(append(e.weights(e.trainable), e.weights(e.frozen)...), grads...) {
			inputShapes = append(inputShapes, t.Shape())
		}
		for _, n := range inputNames {
			inputShapes = append(inputShapes, batch[n].Shape())
		}
		if err := e.sizeHeap(c, inputShapes); err != nil {
			return nil, nil, err
		}
	}
	args := make([]any, 0, nt+nf+nt+len(inputNames))
	for _, t := range e.weights(e.trainable) {
		args = append(args, t)
	}
	for _, t := range e.weights(e.frozen) {
		args = append(args, t)
	}
	for _, g := range grads {
		d, err := DonateTensorBuffer(g, e.Model.Backend(), compute.DeviceNum(0))
		if err != nil {
			return nil, nil, err
		}
		args = append(args, d)
	}
	return c.run(args, batch, inputNames)
}

// apply normalizes the gradient sums by the step's units, clips them by global norm and runs the
// optimizer, one update group at a time (see updateGroup); it returns the norm before clipping.
func (e *Engine) apply(grads []*tensors.Tensor, step int, lr, units float64) (float64, error) {
	opt, maxNorm := e.Args.Optimizer, e.Args.MaxGradNorm
	ns := len(opt.StateNames())
	backend := e.Model.Backend()
	unitsT := tensors.FromScalar(float32(units))
	normC, err := e.graph("grad_norm", func(*compiled) func([]*Node) []*Node { return gradNormGraph(maxNorm, len(grads)) })
	if err != nil {
		return 0, err
	}
	normArgs := make([]any, 0, len(grads)+1)
	for _, g := range grads {
		normArgs = append(normArgs, g)
	}
	normOut, err := normC.exec.Exec(append(normArgs, unitsT)...)
	if err != nil {
		return 0, err
	}
	scalars := []any{tensors.FromScalar(float32(step)), tensors.FromScalar(float32(lr)), unitsT, normOut[1]}
	l := modelLayout(e.Model, e.trainable, e.frozen)
	for _, grp := range updateGroups(e.trainable, l.masters()) {
		names, working := l.groupMembers(grp)
		var params, gs, states []*tensors.Tensor
		for j, i := range grp.members {
			if p := e.masters[i]; p != nil {
				params = append(params, p)
			} else {
				params = append(params, e.Model.Weights[names[j]])
			}
			gs = append(gs, grads[i])
			states = append(states, e.optState[i]...)
		}
		c, err := e.graph("update "+grp.key, func(*compiled) func([]*Node) []*Node {
			return updateGraph(opt, names, working, maxNorm > 0)
		})
		if err != nil {
			return 0, err
		}
		args := make([]any, 0, len(params)+len(gs)+len(states)+len(scalars))
		for _, t := range append(append(params, gs...), states...) {
			d, err := DonateTensorBuffer(t, backend, compute.DeviceNum(0))
			if err != nil {
				return 0, err
			}
			args = append(args, d)
		}
		out, err := c.exec.Exec(append(args, scalars...)...)
		if err != nil {
			return 0, err
		}
		newStates := out[len(grp.members):]
		for j, i := range grp.members {
			if working[j] == dtypes.InvalidDType {
				e.Model.Weights[names[j]] = out[j]
				continue
			}
			e.masters[i] = out[j]
			e.Model.Weights[names[j]], newStates = newStates[0], newStates[1:]
		}
		for j, i := range grp.members {
			copy(e.optState[i], newStates[j*ns:(j+1)*ns])
		}
	}
	return float64(tensors.ToScalar[float32](normOut[0])), nil
}

func (e *Engine) weights(names []string) []*tensors.Tensor {
	out := make([]*tensors.Tensor, len(names))
	for i, n := range names {
		out[i] = e.Model.Weights[n]
	}
	return out
}

// Evaluate returns the objective's loss and metrics per unit over every batch of eval.
func (e *Engine) Evaluate(ctx context.Context, eval Batches) (map[string]float64, error) {
	var lossSum, units float64
	metrics := map[string]float64{}
	for i := 0; i < eval.Len(); i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		batch, err := eval.Batch(0, i)
		if err != nil {
			return nil, err
		}
		out, names, err := e.runEval(batch)
		if err != nil {
			return nil, err
		}
		lossSum += float64(tensors.ToScalar[float32](out[0]))
		units += float64(tensors.ToScalar[float32](out[1]))
		for j, n := range names {
			metrics[n] += float64(tensors.ToScalar[float32](out[2+j]))
		}
	}
	if units == 0 {
		return nil, fmt.Errorf("evaluation set has no unit (token) to score")
	}
	res := map[string]float64{"loss": lossSum / units}
	for k, v := range metrics {
		res[k] = v / units
	}
	return res, nil
}

func (e *Engine) runEval(batch map[string]*tensors.Tensor) ([]*tensors.Tensor, []string, error) {
	inputNames := sortedNames(batch)
	all := e.Model.Weights.Names()
	c, err := e.graph("eval "+strings.Join(inputNames, ","), func(c *compiled) func([]*Node) []*Node {
		return func(inputs []*Node) []*Node {
			p := model.ParamsFromNodes(all, inputs[:len(all)])
			b := map[string]*Node{}
			for i, n := range inputNames {
				b[n] = inputs[len(all)+i]
			}
			sum, count, metrics := e.Objective.Loss(e.Model.Decoder, p, b)
			return lossOutputs(c, sum, count, metrics)
		}
	})
	if err != nil {
		return nil, nil, err
	}
	args := make([]any, 0, len(all)+len(inputNames))
	for _, t := range e.weights(all) {
		args = append(args, t)
	}
	return c.run(args, batch, inputNames)
}

func (e *Engine) finalize() {
	if e.sharded != nil {
		e.sharded.Close()
		e.sharded = nil
	}
	for _, c := range e.graphs {
		c.exec.Finalize()
	}
	e.graphs = nil
}
