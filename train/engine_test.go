package train

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/model"
)

const fixture = "../testdata/models/llama_gqa"

// tokenBatches serves fixed random token rows as causal-LM batches (labels = inputs), shuffled
// per epoch from a seed: a stand-in for the data package in engine tests.
type tokenBatches struct {
	rows      [][]int32
	batchSize int
	seed      uint64
}

func newTokenBatches(n, seq, batchSize int, seed uint64) *tokenBatches {
	rng := rand.New(rand.NewPCG(seed, 99))
	rows := make([][]int32, n)
	for i := range rows {
		rows[i] = make([]int32, seq)
		for j := range rows[i] {
			rows[i][j] = int32(rng.IntN(16)) // a small alphabet the model can learn
		}
	}
	return &tokenBatches{rows: rows, batchSize: batchSize, seed: seed}
}

func (b *tokenBatches) Len() int { return len(b.rows) / b.batchSize }

func (b *tokenBatches) Batch(epoch, index int) (map[string]*tensors.Tensor, error) {
	order := rand.New(rand.NewPCG(b.seed, uint64(epoch))).Perm(len(b.rows))
	seq := len(b.rows[0])
	flat := make([]int32, 0, b.batchSize*seq)
	for _, r := range order[index*b.batchSize : (index+1)*b.batchSize] {
		flat = append(flat, b.rows[r]...)
	}
	ids := tensors.FromFlatDataAndDimensions(flat, b.batchSize, seq)
	labels := tensors.FromFlatDataAndDimensions(append([]int32{}, flat...), b.batchSize, seq)
	return map[string]*tensors.Tensor{"input_ids": ids, "labels": labels}, nil
}

func loadFixture(t *testing.T) *model.Model {
	t.Helper()
	b, _, err := backend.New()
	require.NoError(t, err)
	m, err := model.Load(b, fixture, model.LoadOptions{})
	require.NoError(t, err)
	return m
}

func weightValues(t *testing.T, m *model.Model) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for n, w := range m.Weights {
		v, err := model.Float32Values(w)
		require.NoError(t, err)
		out[n] = v
	}
	return out
}

func baseArgs(dir string) Args {
	return Args{OutputDir: dir, LearningRate: 3e-3, LRSchedulerType: "cosine", WarmupSteps: 0.1, MaxSteps: 20,
		GradientAccumulationSteps: 2, MaxGradNorm: 1, LoggingSteps: 5, Optimizer: AdamW{Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, WeightDecay: 0.01}}
}

// TestResumeIsBitForBit: 10 steps, a stop, then a resume for 10 more give exactly the weights of
// 20 uninterrupted steps.
func TestResumeIsBitForBit(t *testing.T) {
	data := newTokenBatches(24, 12, 4, 5)

	straight := loadFixture(t)
	e := &Engine{Model: straight, Objective: CausalLM{}, Args: baseArgs(t.TempDir())}
	res, err := e.Train(context.Background(), data, nil)
	require.NoError(t, err)
	assert.Equal(t, 20, res.GlobalStep)

	dir := t.TempDir()
	first := loadFixture(t)
	args := baseArgs(dir)
	args.SaveSteps = 10
	ctx, cancel := context.WithCancel(context.Background())
	e1 := &Engine{Model: first, Objective: CausalLM{}, Args: args, Progress: func(step, _ int, _ float64) {
		if step == 10 {
			cancel()
		}
	}}
	_, err = e1.Train(ctx, data, nil)
	require.ErrorIs(t, err, context.Canceled, "the run is killed after step 10")
	last, err := LastCheckpoint(dir)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "checkpoint-10"), last)
	for _, f := range []string{"model.safetensors", "config.json", OptimizerFile, TrainerStateFile} {
		assert.FileExists(t, filepath.Join(last, f))
	}

	resumed := loadFixture(t)
	e2 := &Engine{Model: resumed, Objective: CausalLM{}, Args: args}
	require.NoError(t, e2.Resume(last))
	res2, err := e2.Train(context.Background(), data, nil)
	require.NoError(t, err)
	assert.Equal(t, 20, res2.GlobalStep)
	assert.Equal(t, weightValues(t, straight), weightValues(t, resumed))
	assert.Equal(t, e.state.LogHistory, e2.state.LogHistory, "log history continues as if uninterrupted")
}

// TestAccumulationNormalizesByTokens: two micro-batches of 2 rows accumulate to the same update as
// one batch of 4 rows (the loss is normalized by all trainable tokens of the step).
func TestAccumulationNormalizesByTokens(t *testing.T) {
	small := newTokenBatches(8, 10, 2, 3)
	whole := &tokenBatches{rows: small.rows, batchSize: 4, seed: 3}
	// Same rows in the same order: serve whole batches as pairs of consecutive halves.
	halves := &halfBatches{whole}

	args := baseArgs(t.TempDir())
	args.MaxSteps, args.GradientAccumulationSteps, args.LoggingSteps = 2, 1, 1
	a := loadFixture(t)
	ea := &Engine{Model: a, Objective: CausalLM{}, Args: args}
	ra, err := ea.Train(context.Background(), whole, nil)
	require.NoError(t, err)

	args.GradientAccumulationSteps = 2
	b := loadFixture(t)
	eb := &Engine{Model: b, Objective: CausalLM{}, Args: args}
	rb, err := eb.Train(context.Background(), halves, nil)
	require.NoError(t, err)
	assert.InDelta(t, ra.TrainLoss, rb.TrainLoss, 1e-6)
	wa, wb := weightValues(t, a), weightValues(t, b)
	for n := range wa {
		assert.InDeltaSlice(t, wa[n], wb[n], 1e-5, n)
	}
	assert.InDelta(t, ea.state.LogHistory[0]["grad_norm"], eb.state.LogHistory[0]["grad_norm"], 1e-5)
}

type halfBatches struct{ whole *tokenBatches }

func (h *halfBatches) Len() int { return 2 * h.whole.Len() }

func (h *halfBatches) Batch(epoch, index int) (map[string]*tensors.Tensor, error) {
	full, err := h.whole.Batch(epoch, index/2)
	if err != nil {
		return nil, err
	}
	out := map[string]*tensors.Tensor{}
	for k, t := range full {
		v, err := tensors.CopyFlatData[int32](t)
		if err != nil {
			return nil, err
		}
		seq := t.Shape().Dim(1)
		half := len(v) / 2
		part := v[(index%2)*half : (index%2+1)*half]
		out[k] = tensors.FromFlatDataAndDimensions(append([]int32{}, part...), 2, seq)
	}
	return out, nil
}

func TestTrainingLearnsAndLogs(t *testing.T) {
	data := newTokenBatches(16, 12, 4, 9)
	m := loadFixture(t)
	args := baseArgs(t.TempDir())
	args.MaxSteps, args.EvalSteps, args.LoggingFirstStep = 30, 15, true
	var sink recordingSink
	e := &Engine{Model: m, Objective: CausalLM{}, Args: args, Sinks: []Sink{&sink}}
	before, err := (&Engine{Model: m, Objective: CausalLM{}, Args: args}).evaluateOnce(data)
	require.NoError(t, err)
	_, err = e.Train(context.Background(), data, data)
	require.NoError(t, err)
	after, err := (&Engine{Model: m, Objective: CausalLM{}, Args: args}).evaluateOnce(data)
	require.NoError(t, err)
	assert.Less(t, after["loss"], before["loss"]-0.5, "the model learns the small alphabet")
	require.NotEmpty(t, sink.entries)
	firstEntry := sink.entries[0]
	for _, k := range []string{"loss", "learning_rate", "grad_norm", "epoch", "num_tokens", "mean_token_accuracy"} {
		assert.Contains(t, firstEntry, k)
	}
	assert.Equal(t, 1.0, firstEntry["step"], "logging_first_step")
	var evals int
	for _, en := range sink.entries {
		if _, ok := en["eval_loss"]; ok {
			evals++
		}
	}
	assert.Equal(t, 2, evals)
}

func TestDivergenceStopsWithStep(t *testing.T) {
	data := newTokenBatches(8, 8, 4, 1)
	m := loadFixture(t)
	args := baseArgs(t.TempDir())
	args.LearningRate, args.MaxGradNorm, args.LRSchedulerType, args.WarmupSteps = 1e30, 0, "constant", 0
	e := &Engine{Model: m, Objective: CausalLM{}, Args: args}
	_, err := e.Train(context.Background(), data, nil)
	require.Error(t, err)
	assert.Regexp(t, `step \d+: loss is (NaN|\+Inf)`, err.Error())
}

type recordingSink struct{ entries []map[string]float64 }

func (r *recordingSink) Log(_ int, m map[string]float64) error {
	r.entries = append(r.entries, m)
	return nil
}

// evaluateOnce evaluates with a fresh engine, as a host does before training (no Train call).
func (e *Engine) evaluateOnce(data Batches) (map[string]float64, error) {
	defer e.finalize()
	return e.Evaluate(context.Background(), data)
}

// TestZeroArgsAreTransformersDefaults: Args{} runs transformers' defaults — 3 epochs (no
// "schedule" error for zero steps and epochs), learning rate 5e-5, linear decay — and arguments no
// run can use are errors naming the transformers key and the field.
func TestZeroArgsAreTransformersDefaults(t *testing.T) {
	data := newTokenBatches(8, 8, 4, 1) // 2 batches per epoch
	sink := &recordingSink{}
	e := &Engine{Model: loadFixture(t), Objective: CausalLM{}, Args: Args{LoggingSteps: 1}, Sinks: []Sink{sink}}
	res, err := e.Train(context.Background(), data, nil)
	require.NoError(t, err)
	assert.Equal(t, DefaultNumTrainEpochs*data.Len(), res.GlobalStep)
	require.NotEmpty(t, sink.entries)
	assert.InDelta(t, DefaultLearningRate, sink.entries[0]["learning_rate"], 1e-12, "linear decay starts at the default peak")
	assert.Equal(t, 6, (&Engine{}).TotalSteps(2))

	for _, tc := range []struct {
		args Args
		want string
	}{
		{Args{LearningRate: -1}, "learning_rate must be positive, got -1 (Args.LearningRate)"},
		{Args{NumTrainEpochs: -2}, "num_train_epochs must be positive when max_steps is not set, got -2 (Args.NumTrainEpochs, or set Args.MaxSteps)"},
		{Args{GradientAccumulationSteps: -1}, "gradient_accumulation_steps must be positive, got -1"},
		{Args{WarmupSteps: -0.5}, "warmup_steps must not be negative"},
		{Args{SaveSteps: -1}, "(Args.LoggingSteps, SaveSteps, EvalSteps, SaveTotalLimit)"},
	} {
		assert.ErrorContains(t, tc.args.Validate(), tc.want)
		_, err := (&Engine{Model: loadFixture(t), Objective: CausalLM{}, Args: tc.args}).Train(context.Background(), data, nil)
		assert.ErrorContains(t, err, tc.want, "Train checks its arguments before compiling")
	}
	assert.NoError(t, Args{NumTrainEpochs: -2, MaxSteps: 5}.Validate(), "max_steps overrides the epochs")
	_, err = (&Engine{Objective: CausalLM{}}).Train(context.Background(), data, nil)
	assert.ErrorContains(t, err, "(Engine.Model, Engine.Objective)")
}
