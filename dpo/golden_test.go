package dpo

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/data"
	"handbook/model"
	"handbook/train"
)

const (
	policyFixture = "../testdata/models/llama_gqa"
	refFixture    = "../testdata/models/qwen2_bias"
)

// trlGolden is dpo/testdata/trl_dpo.json, written by tools/oracle/dpo_golden.py.
type trlGolden struct {
	Pairs []struct {
		PromptIDs   []int32 `json:"prompt_ids"`
		ChosenIDs   []int32 `json:"chosen_ids"`
		RejectedIDs []int32 `json:"rejected_ids"`
	} `json:"pairs"`
	PadID          int32   `json:"pad_id"`
	Beta           float64 `json:"beta"`
	LabelSmoothing float64 `json:"label_smoothing"`
	DiscopopTau    float64 `json:"discopop_tau"`
	Batch          struct {
		InputIDs       [][]int32 `json:"input_ids"`
		AttentionMask  [][]int32 `json:"attention_mask"`
		CompletionMask [][]int32 `json:"completion_mask"`
	} `json:"batch"`
	RefLogps struct {
		Chosen   []float64 `json:"chosen"`
		Rejected []float64 `json:"rejected"`
	} `json:"ref_logps"`
	Losses []struct {
		LossType    []string           `json:"loss_type"`
		LossWeights []float64          `json:"loss_weights"`
		Loss        float64            `json:"loss"`
		GradNorm    float64            `json:"grad_norm"`
		Metrics     map[string]float64 `json:"metrics"`
	} `json:"losses"`
	ORPO struct {
		Loss     float64            `json:"loss"`
		GradNorm float64            `json:"grad_norm"`
		Metrics  map[string]float64 `json:"metrics"`
	} `json:"orpo"`
	Args struct {
		LearningRate    float64 `json:"learning_rate"`
		Scheduler       string  `json:"lr_scheduler_type"`
		WarmupSteps     float64 `json:"warmup_steps"`
		WeightDecay     float64 `json:"weight_decay"`
		MaxGradNorm     float64 `json:"max_grad_norm"`
		MaxSteps        int     `json:"max_steps"`
		BatchSize       int     `json:"per_device_train_batch_size"`
		Beta1           float64 `json:"adam_beta1"`
		Beta2           float64 `json:"adam_beta2"`
		Epsilon         float64 `json:"adam_epsilon"`
		GradientAccumul int     `json:"gradient_accumulation_steps"`
	} `json:"trl_args"`
	Steps []map[string]float64 `json:"steps"`
}

func loadGolden(t *testing.T) (trlGolden, []data.PreferenceSample) {
	t.Helper()
	raw, err := os.ReadFile("testdata/trl_dpo.json")
	require.NoError(t, err)
	var g trlGolden
	require.NoError(t, json.Unmarshal(raw, &g))
	pairs := make([]data.PreferenceSample, len(g.Pairs))
	for i, p := range g.Pairs {
		pairs[i] = data.PreferenceSample{PromptIDs: p.PromptIDs, ChosenIDs: p.ChosenIDs, RejectedIDs: p.RejectedIDs}
	}
	return g, pairs
}

func loadModel(t *testing.T, dir string) *model.Model {
	t.Helper()
	b, _, err := backend.New()
	require.NoError(t, err)
	m, err := model.Load(b, dir, model.LoadOptions{})
	require.NoError(t, err)
	return m
}

// evalObjective runs obj once on batch with m's weights and returns the loss per unit and the
// metrics per unit, as the engine reports them for one micro-batch, plus the global norm of the
// gradient of the loss per unit (the training graph's hand-written gradients).
func evalObjective(t *testing.T, m *model.Model, dec *model.Decoder, obj train.Objective, batch map[string]*tensors.Tensor) (float64, map[string]float64) {
	t.Helper()
	names := m.Weights.Names()
	inputs := make([]string, 0, len(batch))
	for n := range batch {
		inputs = append(inputs, n)
	}
	sort.Strings(inputs)
	var metricNames []string
	exec, err := NewExec(m.Backend(), func(in []*Node) []*Node {
		p := model.ParamsFromNodes(names, in[:len(names)])
		b := map[string]*Node{}
		for i, n := range inputs {
			b[n] = in[len(names)+i]
		}
		training := *dec
		training.FastGradients = true
		sum, count, metrics := obj.Loss(&training, p, b)
		loss := Div(sum, count)
		var squares []*Node
		for _, g := range Gradient(loss, in[:len(names)]...) {
			squares = append(squares, ReduceAllSum(Square(ConvertDType(g, dtypes.Float64))))
		}
		metrics["grad_norm"] = Mul(Sqrt(ReduceAllSum(Stack(squares, 0))), ConvertDType(count, dtypes.Float64))
		outs := []*Node{loss}
		for n := range metrics {
			metricNames = append(metricNames, n)
		}
		sort.Strings(metricNames)
		for _, n := range metricNames {
			outs = append(outs, Div(ConvertDType(metrics[n], dtypes.Float64), ConvertDType(count, dtypes.Float64)))
		}
		return outs
	})
	require.NoError(t, err)
	defer exec.Finalize()
	var args []any
	for _, n := range names {
		args = append(args, m.Weights[n])
	}
	for _, n := range inputs {
		args = append(args, batch[n])
	}
	out, err := exec.Exec(args...)
	require.NoError(t, err)
	metrics := map[string]float64{}
	for i, n := range metricNames {
		metrics[n] = tensors.ToScalar[float64](out[1+i])
	}
	return float64(tensors.ToScalar[float32](out[0])), metrics
}

// relErr is |got − want| / |want|, or the absolute error when want is (near) zero.
func relErr(got, want float64) float64 {
	d := math.Abs(got - want)
	if math.Abs(want) < 1e-6 {
		return d
	}
	return d / math.Abs(want)
}

// TestCollateMatchesTRL pins the batch layout the goldens were computed on.
func TestCollateMatchesTRL(t *testing.T) {
	g, pairs := loadGolden(t)
	pb, err := data.CollatePreference(pairs, data.CollateConfig{PadID: g.PadID})
	require.NoError(t, err)
	assert.Equal(t, g.Batch.InputIDs, pb.InputIDs)
	assert.Equal(t, g.Batch.AttentionMask, pb.AttentionMask)
	assert.Equal(t, g.Batch.CompletionMask, pb.CompletionMask)
}

// TestLossTypesMatchTRL compares every loss type's loss and metrics with TRL's DPOTrainer on the
// golden batch, policy llama_gqa against reference qwen2_bias (scored by its own forward pass).
func TestLossTypesMatchTRL(t *testing.T) {
	g, pairs := loadGolden(t)
	policy, ref := loadModel(t, policyFixture), loadModel(t, refFixture)
	collate := data.CollateConfig{PadID: g.PadID}
	batch, err := collatePairs(pairs, nil, collate)
	require.NoError(t, err)

	s, err := newScorer(ref, ref.Decoder)
	require.NoError(t, err)
	defer s.finalize()
	refLogps, err := s.score(batch)
	require.NoError(t, err)
	var worst float64
	for i, l := range refLogps {
		for _, c := range [][2]float64{{l.Chosen, g.RefLogps.Chosen[i]}, {l.Rejected, g.RefLogps.Rejected[i]}} {
			e := relErr(c[0], c[1])
			worst = max(worst, e)
			assert.LessOrEqual(t, e, 1e-5, "pair %d reference log-prob %v vs TRL %v", i, c[0], c[1])
		}
	}
	t.Logf("reference log-probs: max relative error %.2e", worst)
	addRef(batch, refLogps)

	worst = 0
	var worstGrad float64
	for _, want := range g.Losses {
		lts, err := ParseLossTypes(want.LossType...)
		require.NoError(t, err)
		cfg := LossConfig{Beta: g.Beta, LossType: lts, LossWeights: want.LossWeights, LabelSmoothing: g.LabelSmoothing, DiscopopTau: g.DiscopopTau}
		require.NoError(t, cfg.Validate())
		loss, metrics := evalObjective(t, policy, policy.Decoder, Objective{LossConfig: cfg}, batch)
		e := relErr(loss, want.Loss)
		worst = max(worst, e)
		assert.LessOrEqual(t, e, 1e-5, "%v loss %v vs TRL %v", want.LossType, loss, want.Loss)
		e = relErr(metrics["grad_norm"], want.GradNorm)
		worstGrad = max(worstGrad, e)
		assert.LessOrEqual(t, e, 1e-5, "%v gradient norm %v vs TRL %v", want.LossType, metrics["grad_norm"], want.GradNorm)
		delete(metrics, "grad_norm")
		for k, v := range want.Metrics {
			got, ok := metrics[k]
			require.True(t, ok, "%v: metric %s missing", want.LossType, k)
			e := relErr(got, v)
			worst = max(worst, e)
			assert.LessOrEqual(t, e, 1e-5, "%v %s %v vs TRL %v", want.LossType, k, got, v)
		}
		assert.Len(t, metrics, len(want.Metrics), "%v: metric names %v", want.LossType, metrics)
	}
	t.Logf("%d loss configurations: max relative error of losses and metrics %.2e, of gradient norms %.2e", len(g.Losses), worst, worstGrad)
}

// TestORPOMatchesTRL compares ORPO's loss and metrics with TRL's ORPOTrainer on the golden batch.
func TestORPOMatchesTRL(t *testing.T) {
	g, pairs := loadGolden(t)
	policy := loadModel(t, policyFixture)
	batch, err := collatePairs(pairs, nil, data.CollateConfig{PadID: g.PadID})
	require.NoError(t, err)
	loss, metrics := evalObjective(t, policy, policy.Decoder, ORPO{Beta: g.Beta}, batch)
	worst := relErr(loss, g.ORPO.Loss)
	assert.LessOrEqual(t, worst, 1e-5, "loss %v vs TRL %v", loss, g.ORPO.Loss)
	gradErr := relErr(metrics["grad_norm"], g.ORPO.GradNorm)
	assert.LessOrEqual(t, gradErr, 1e-5, "gradient norm %v vs TRL %v", metrics["grad_norm"], g.ORPO.GradNorm)
	delete(metrics, "grad_norm")
	for k, v := range g.ORPO.Metrics {
		got, ok := metrics[k]
		require.True(t, ok, "metric %s missing", k)
		e := relErr(got, v)
		if k == "logits/chosen" || k == "logits/rejected" {
			// Means of ~10⁴ logits near zero: compare absolutely, at the scale of the logits.
			e = math.Abs(got - v)
		}
		worst = max(worst, e)
		assert.LessOrEqual(t, e, 1e-5, "%s %v vs TRL %v", k, got, v)
	}
	assert.Len(t, metrics, len(g.ORPO.Metrics))
	t.Logf("ORPO: max relative error of loss and metrics %.2e, of the gradient norm %.2e", worst, gradErr)
}

// TestInGraphReferenceIsFrozen runs the adapter-disabled path (Reference decoder on the policy's
// own parameters): with policy == reference the loss is ln 2, and the gradient equals the one
// computed with the same reference log-probs fed as constants — no gradient flows into the
// reference.
func TestInGraphReferenceIsFrozen(t *testing.T) {
	g, pairs := loadGolden(t)
	policy := loadModel(t, policyFixture)
	batch, err := collatePairs(pairs, nil, data.CollateConfig{PadID: g.PadID})
	require.NoError(t, err)
	obj := Objective{LossConfig: DefaultLossConfig(), Reference: policy.Decoder}
	loss, metrics := evalObjective(t, policy, policy.Decoder, obj, batch)
	assert.InDelta(t, math.Ln2, loss, 1e-6)
	assert.InDelta(t, 0, metrics["rewards/margins"], 1e-7)

	grads := func(obj Objective, batch map[string]*tensors.Tensor) [][]float32 {
		names := policy.Weights.Names()
		inputs := []string{"attention_mask", "input_ids", "labels"}
		if _, ok := batch[RefChosenLogps]; ok {
			inputs = append(inputs, RefChosenLogps, RefRejectedLogps)
		}
		exec, err := NewExec(policy.Backend(), func(in []*Node) []*Node {
			p := model.ParamsFromNodes(names, in[:len(names)])
			b := map[string]*Node{}
			for i, n := range inputs {
				b[n] = in[len(names)+i]
			}
			sum, _, _ := obj.Loss(policy.Decoder, p, b)
			return Gradient(sum, in[:len(names)]...)
		})
		require.NoError(t, err)
		defer exec.Finalize()
		var args []any
		for _, n := range names {
			args = append(args, policy.Weights[n])
		}
		for _, n := range inputs {
			args = append(args, batch[n])
		}
		out, err := exec.Exec(args...)
		require.NoError(t, err)
		res := make([][]float32, len(out))
		for i, o := range out {
			res[i], err = tensors.CopyFlatData[float32](o)
			require.NoError(t, err)
		}
		return res
	}
	inGraph := grads(obj, batch)
	s, err := newScorer(policy, policy.Decoder)
	require.NoError(t, err)
	defer s.finalize()
	own, err := s.score(batch)
	require.NoError(t, err)
	fed, err := collatePairs(pairs, own, data.CollateConfig{PadID: g.PadID})
	require.NoError(t, err)
	constant := grads(Objective{LossConfig: DefaultLossConfig()}, fed)
	var norm float64
	for i := range inGraph {
		for j := range inGraph[i] {
			assert.InDelta(t, constant[i][j], inGraph[i][j], 1e-6)
			norm += float64(inGraph[i][j]) * float64(inGraph[i][j])
		}
	}
	assert.Greater(t, norm, 0.0, "the policy still gets a gradient")
}

// TestMatchesTRLDPOTrainer replays TRL's 20-step DPO run (reference = the policy's starting copy):
// step-1 loss ln 2, every logged metric within 1e-5 at step 1 and 1e-3 at every later step,
// for each way of obtaining that reference.
func TestMatchesTRLDPOTrainer(t *testing.T) {
	g, pairs := loadGolden(t)
	for _, policy := range []string{"copy", "precompute"} {
		t.Run(policy, func(t *testing.T) {
			m := loadModel(t, policyFixture)
			out := t.TempDir()
			var entries []map[string]float64
			cfg := Config{
				Args: train.Args{OutputDir: out, LearningRate: g.Args.LearningRate, LRSchedulerType: g.Args.Scheduler,
					WarmupSteps: g.Args.WarmupSteps, MaxSteps: g.Args.MaxSteps, MaxGradNorm: g.Args.MaxGradNorm, LoggingSteps: 1,
					GradientAccumulationSteps: g.Args.GradientAccumul,
					Optimizer:                 train.AdamW{Beta1: g.Args.Beta1, Beta2: g.Args.Beta2, Epsilon: g.Args.Epsilon, WeightDecay: g.Args.WeightDecay}},
				LossConfig:            LossConfig{Beta: g.Beta, LossType: []LossType{LossSigmoid}},
				RunArgs:               RunArgs{PerDeviceTrainBatchSize: g.Args.BatchSize, PadID: g.PadID},
				PrecomputeRefLogProbs: policy == "precompute",
			}
			tr := &Trainer{Model: m, TrainSet: pairs, Config: cfg, Sinks: []train.Sink{sinkFunc(func(_ int, e map[string]float64) error {
				entries = append(entries, e)
				return nil
			})}}
			res, err := tr.Train(context.Background())
			require.NoError(t, err)
			require.Len(t, entries, len(g.Steps))
			assert.InDelta(t, math.Ln2, entries[0]["loss"], 1e-6, "step-1 loss with policy == reference")
			var worst, worstFirst float64
			for i, want := range g.Steps {
				tol := 1e-3
				if i == 0 {
					tol = 1e-5
				}
				for k, v := range want {
					got, ok := entries[i][k]
					require.True(t, ok, "step %d: %s not logged", i+1, k)
					e := relErr(got, v)
					if k == "learning_rate" {
						e = math.Abs(got - v)
					}
					if i == 0 {
						worstFirst = max(worstFirst, e)
					} else {
						worst = max(worst, e)
					}
					assert.LessOrEqual(t, e, tol, "step %d %s: %v vs TRL %v", i+1, k, got, v)
				}
			}
			t.Logf("step 1: max relative error %.2e; steps 2–%d: %.2e", worstFirst, len(g.Steps), worst)
			assert.Equal(t, g.Args.MaxSteps, res.GlobalStep)
			for _, f := range []string{"config.json", "model.safetensors", "train_results.json", "all_results.json", train.TrainerStateFile, train.LogFile} {
				assert.FileExists(t, filepath.Join(out, f))
			}
		})
	}
}

type sinkFunc func(step int, m map[string]float64) error

func (f sinkFunc) Log(step int, m map[string]float64) error { return f(step, m) }
