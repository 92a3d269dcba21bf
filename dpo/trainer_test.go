package dpo

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/data"
	"handbook/lora"
	"handbook/model"
	"handbook/train"
)

// oneStepArgs trains one step on the whole golden set, logging it, evaluating at the end.
func oneStepArgs(out string) train.Args {
	return train.Args{OutputDir: out, LearningRate: 1e-3, MaxSteps: 1, LoggingSteps: 1, EvalSteps: 1}
}

func collect(entries *[]map[string]float64) []train.Sink {
	return []train.Sink{sinkFunc(func(_ int, e map[string]float64) error {
		*entries = append(*entries, e)
		return nil
	})}
}

// TestReferencePoliciesMatchTRL: a separate ref_model scored per batch, the same reference
// precomputed, and its log-probs supplied as dataset columns all give TRL's step-1 loss and
// metrics (policy llama_gqa, reference qwen2_bias); evaluation logs them with the eval_ prefix.
func TestReferencePoliciesMatchTRL(t *testing.T) {
	g, pairs := loadGolden(t)
	want := g.Losses[0]
	require.Equal(t, []string{"sigmoid"}, want.LossType)
	columns := make([]RefLogps, len(pairs))
	for i := range columns {
		columns[i] = RefLogps{Chosen: g.RefLogps.Chosen[i], Rejected: g.RefLogps.Rejected[i]}
	}
	for _, tc := range []struct {
		name string
		set  func(tr *Trainer)
	}{
		{"ref_model", func(tr *Trainer) { tr.RefModel = loadModel(t, refFixture) }},
		{"ref_model precomputed", func(tr *Trainer) {
			tr.RefModel = loadModel(t, refFixture)
			tr.Config.PrecomputeRefLogProbs = true
			tr.Config.PrecomputeRefBatchSize = 4
		}},
		{"dataset columns", func(tr *Trainer) { tr.TrainRefLogps, tr.EvalRefLogps = columns, columns }},
		{"columns carried by the pairs", func(tr *Trainer) {
			withRef := make([]data.PreferenceSample, len(pairs))
			for i, p := range pairs {
				p.RefLogps = &[2]float64{columns[i].Chosen, columns[i].Rejected}
				withRef[i] = p
			}
			tr.TrainSet, tr.EvalSet = withRef, withRef
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var entries []map[string]float64
			tr := &Trainer{Model: loadModel(t, policyFixture), TrainSet: pairs, EvalSet: pairs, Sinks: collect(&entries),
				Config: Config{Args: oneStepArgs(t.TempDir()), LossConfig: LossConfig{Beta: g.Beta},
					RunArgs: RunArgs{PerDeviceTrainBatchSize: len(pairs), PerDeviceEvalBatchSize: 4, PadID: g.PadID}}}
			tc.set(tr)
			_, err := tr.Train(context.Background())
			require.NoError(t, err)
			require.Len(t, entries, 2)
			step := entries[0]
			assert.LessOrEqual(t, relErr(step["loss"], want.Loss), 1e-5, "loss %v vs TRL %v", step["loss"], want.Loss)
			for k, v := range want.Metrics {
				assert.LessOrEqual(t, relErr(step[k], v), 1e-5, "%s %v vs TRL %v", k, step[k], v)
			}
			// The evaluation after the update logs TRL's names with the eval_ prefix.
			for _, k := range []string{"eval_loss", "eval_rewards/chosen", "eval_rewards/rejected", "eval_rewards/accuracies",
				"eval_rewards/margins", "eval_logps/chosen", "eval_logps/rejected", "eval_logits/chosen", "eval_logits/rejected"} {
				assert.Contains(t, entries[1], k)
			}
		})
	}
}

// TestORPOTrainer: ORPO's first logged step is TRL's loss and metrics on the same batch.
func TestORPOTrainer(t *testing.T) {
	g, pairs := loadGolden(t)
	var entries []map[string]float64
	out := t.TempDir()
	tr := &ORPOTrainer{Model: loadModel(t, policyFixture), TrainSet: pairs, Sinks: collect(&entries),
		Config: ORPOConfig{Args: train.Args{OutputDir: out, LearningRate: 1e-3, MaxSteps: 2, LoggingSteps: 1},
			RunArgs: RunArgs{PerDeviceTrainBatchSize: len(pairs), PadID: g.PadID}, Beta: g.Beta}}
	res, err := tr.Train(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, res.GlobalStep)
	require.Len(t, entries, 2)
	assert.LessOrEqual(t, relErr(entries[0]["loss"], g.ORPO.Loss), 1e-5)
	for _, k := range []string{"nll_loss", "log_odds_ratio", "log_odds_chosen", "rewards/chosen", "rewards/accuracies", "logps/rejected"} {
		assert.LessOrEqual(t, relErr(entries[0][k], g.ORPO.Metrics[k]), 1e-5, "%s", k)
	}
	assert.Less(t, entries[1]["loss"], entries[0]["loss"])
	assert.FileExists(t, filepath.Join(out, "model.safetensors"))
}

func TestTrainerRejectsBadSetup(t *testing.T) {
	m := loadModel(t, policyFixture)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	good := []data.PreferenceSample{{PromptIDs: []int32{5, 6}, ChosenIDs: []int32{7, 2}, RejectedIDs: []int32{8, 2}}}
	args := train.Args{OutputDir: t.TempDir(), LearningRate: 1e-3, MaxSteps: 1}
	for _, tc := range []struct {
		name  string
		cfg   Config
		pairs []data.PreferenceSample
		want  string
	}{
		{"unknown loss type", Config{Args: args, LossConfig: LossConfig{Beta: 0.1, LossType: []LossType{"simpo"}}}, good,
			`unknown loss_type "simpo"; valid: sigmoid, hinge, ipo, exo_pair, nca_pair, robust, bco_pair, sppo_hard, aot, aot_unpaired, apo_zero, apo_down, discopop, sft, sigmoid_norm`},
		{"loss weights", Config{Args: args, LossConfig: LossConfig{Beta: 0.1, LossType: []LossType{LossSigmoid, LossSFT}, LossWeights: []float64{0.8}}}, good, "loss_weights has 1 values for 2 loss types"},
		{"beta negative", Config{Args: args, LossConfig: LossConfig{Beta: -0.5}}, good, "beta must be positive and finite, got -0.5 (LossConfig.Beta)"},
		{"negative batch", Config{Args: args, RunArgs: RunArgs{PerDeviceTrainBatchSize: -1}}, good,
			"dpo: per_device_train_batch_size must be positive, got -1 (Config.PerDeviceTrainBatchSize)"},
		{"no output dir", Config{Args: train.Args{MaxSteps: 1}}, good, "dpo: output_dir is required (Config.OutputDir)"},
		{"empty prompt", Config{Args: args, LossConfig: DefaultLossConfig()},
			[]data.PreferenceSample{good[0], {ChosenIDs: []int32{7, 2}, RejectedIDs: []int32{8, 2}}}, "training pair 1 has an empty prompt: chosen and rejected must share a prompt"},
		{"empty rejected", Config{Args: args, LossConfig: DefaultLossConfig()},
			[]data.PreferenceSample{{PromptIDs: []int32{5}, ChosenIDs: []int32{7, 2}}}, "training pair 0 has an empty rejected completion"},
		{"token outside vocabulary", Config{Args: args, LossConfig: DefaultLossConfig()},
			[]data.PreferenceSample{{PromptIDs: []int32{500}, ChosenIDs: []int32{7, 2}, RejectedIDs: []int32{8}}}, "token id 500 outside the vocabulary of 128"},
		{"no pairs", Config{Args: args, LossConfig: DefaultLossConfig()}, nil, "no training pair"},
		{"output dir is a file", Config{Args: train.Args{OutputDir: file, LearningRate: 1e-3, MaxSteps: 1}, LossConfig: DefaultLossConfig()}, good, "is a file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &Trainer{Model: m, Config: tc.cfg, TrainSet: tc.pairs}
			_, err := tr.Train(context.Background())
			assert.ErrorContains(t, err, tc.want)
		})
	}
	tr := &Trainer{Model: m, Config: Config{Args: args, LossConfig: DefaultLossConfig()}, TrainSet: good, TrainRefLogps: []RefLogps{{}, {}}}
	_, err := tr.Train(context.Background())
	assert.ErrorContains(t, err, "2 reference log-probs for 1 training pairs")
	mixed := []data.PreferenceSample{good[0], good[0]}
	mixed[0].RefLogps = &[2]float64{-1, -2}
	tr = &Trainer{Model: m, Config: Config{Args: args}, TrainSet: mixed}
	_, err = tr.Train(context.Background())
	assert.ErrorContains(t, err, "training pair 1: ref_chosen_logps/ref_rejected_logps are present in some pairs only")
	orpo := &ORPOTrainer{Model: m, Config: ORPOConfig{Args: args, Beta: -1}, TrainSet: good}
	_, err = orpo.Train(context.Background())
	assert.ErrorContains(t, err, "orpo: beta must be positive")
}

// TestZeroConfigIsDPOConfig: a Config with only an output directory is TRL's DPOConfig — β 0.1,
// sigmoid, learning rate 1e-6 — step for step the run of DefaultLossConfig; ORPOConfig likewise
// takes λ 0.1.
func TestZeroConfigIsDPOConfig(t *testing.T) {
	g, pairs := loadGolden(t)
	run := func(cfg Config) []map[string]float64 {
		var entries []map[string]float64
		cfg.OutputDir, cfg.MaxSteps, cfg.LoggingSteps, cfg.PadID = t.TempDir(), 2, 1, g.PadID
		tr := &Trainer{Model: loadModel(t, policyFixture), TrainSet: pairs, Sinks: collect(&entries), Config: cfg}
		_, err := tr.Train(context.Background())
		require.NoError(t, err)
		require.Len(t, entries, 2)
		return entries
	}
	zero := run(Config{})
	explicit := run(Config{Args: train.Args{LearningRate: DefaultLearningRate}, LossConfig: DefaultLossConfig()})
	assert.InDelta(t, math.Ln2, zero[0]["loss"], 1e-6, "sigmoid loss of a policy equal to its reference")
	assert.InDelta(t, DefaultLearningRate, zero[0]["learning_rate"], 1e-15)
	assert.Equal(t, explicit, zero)

	orpo := func(beta float64) float64 {
		var entries []map[string]float64
		tr := &ORPOTrainer{Model: loadModel(t, policyFixture), TrainSet: pairs, Sinks: collect(&entries),
			Config: ORPOConfig{Args: train.Args{OutputDir: t.TempDir(), MaxSteps: 1, LoggingSteps: 1}, RunArgs: RunArgs{PadID: g.PadID}, Beta: beta}}
		_, err := tr.Train(context.Background())
		require.NoError(t, err)
		return entries[0]["loss"]
	}
	assert.Equal(t, orpo(DefaultBeta), orpo(0))
}

// lowRankHead is a test-only adapter on lm_head, y = x·Wᵀ + (x·Aᵀ)·Bᵀ with B starting at zero, so
// the adapted policy starts equal to its base: the shape of a LoRA run without the lora package.
type lowRankHead struct{}

func (lowRankHead) Apply(p model.Params, module string, x *Node) *Node {
	y := model.Dense{}.Apply(p, module, x)
	if module != "lm_head" {
		return y
	}
	low := DotGeneral(x, []int{x.Rank() - 1}, nil, p["lm_head.adapter_A"], []int{1}, nil)
	return Add(y, DotGeneral(low, []int{low.Rank() - 1}, nil, p["lm_head.adapter_B"], []int{1}, nil))
}

// headAdapter is lowRankHead as a train.Adapter: its weights alone train, nothing is saved, and
// the reference is the adapter-free decoder.
type headAdapter struct{ base *model.Decoder }

func (headAdapter) Trainable(name string) bool                                  { return strings.HasPrefix(name, "lm_head.adapter_") }
func (headAdapter) SaveWeights(string) error                                    { return nil }
func (headAdapter) LoadWeights(string) (map[string]*tensors.Tensor, error)      { return nil, nil }
func (headAdapter) TrainingDecoder(dec *model.Decoder, _ uint64) *model.Decoder { return dec }
func (h headAdapter) BaseDecoder() *model.Decoder                               { return h.base }

// TestAdapterDisabledReference trains only an adapter with the reference computed in the same
// graph by the adapter-free decoder on the policy's own (frozen) base weights: step-1 loss is
// ln 2, the loss falls, and the base weights the reference reads never change.
func TestAdapterDisabledReference(t *testing.T) {
	g, pairs := loadGolden(t)
	m := loadModel(t, policyFixture)
	hidden, vocab, rank := m.Config.HiddenSize, m.Config.VocabSize, 4
	a := make([]float32, rank*hidden)
	for i := range a {
		a[i] = float32(math.Sin(float64(i))) * 0.1
	}
	m.Weights["lm_head.adapter_A"] = tensors.FromFlatDataAndDimensions(a, rank, hidden)
	m.Weights["lm_head.adapter_B"] = tensors.FromFlatDataAndDimensions(make([]float32, vocab*rank), vocab, rank)
	base, err := tensors.CopyFlatData[float32](m.Weights["lm_head.weight"])
	require.NoError(t, err)
	refDecoder := *m.Decoder // Linear nil: Dense, the adapter disabled
	m.Decoder.Linear = lowRankHead{}

	var entries []map[string]float64
	tr := &Trainer{Model: m, TrainSet: pairs, Adapter: headAdapter{base: &refDecoder}, Sinks: collect(&entries),
		Config: Config{Args: train.Args{OutputDir: t.TempDir(), LearningRate: 1e-2, MaxSteps: 5, LoggingSteps: 1},
			LossConfig: DefaultLossConfig(), RunArgs: RunArgs{PerDeviceTrainBatchSize: len(pairs), PadID: g.PadID}}}
	_, err = tr.Train(context.Background())
	require.NoError(t, err)
	require.Len(t, entries, 5)
	assert.InDelta(t, math.Ln2, entries[0]["loss"], 1e-6)
	assert.Less(t, entries[4]["loss"], entries[0]["loss"])
	assert.Greater(t, entries[4]["rewards/margins"], 0.0)
	after, err := tensors.CopyFlatData[float32](m.Weights["lm_head.weight"])
	require.NoError(t, err)
	assert.Equal(t, base, after, "the reference's base weights are frozen")
}

// spyAdapter records the seeds of the training graphs built on a LoRA adapter's TrainingDecoder.
type spyAdapter struct {
	*lora.Adapter
	seeds []uint64
}

func (s *spyAdapter) TrainingDecoder(dec *model.Decoder, seed uint64) *model.Decoder {
	s.seeds = append(s.seeds, seed)
	return s.Adapter.TrainingDecoder(dec, seed)
}

// TestAdapterTrainsUnderDPOAndORPO: with a LoRA adapter in the Adapter field, DPO's and ORPO's
// training graphs run the adapter's TrainingDecoder seeded by Args.Seed — so lora_dropout applies
// (a dropout run trains differently from a dropout-free one) — and the output holds the adapter.
func TestAdapterTrainsUnderDPOAndORPO(t *testing.T) {
	g, pairs := loadGolden(t)
	run := func(orpo bool, dropout float64) (*spyAdapter, []map[string]float64, string) {
		m := loadModel(t, policyFixture)
		a, err := lora.Attach(m, lora.Config{R: 4, Alpha: 8, Dropout: dropout, TargetModules: []string{lora.AllLinear}}, 3)
		require.NoError(t, err)
		spy := &spyAdapter{Adapter: a}
		var entries []map[string]float64
		out := t.TempDir()
		args := train.Args{OutputDir: out, LearningRate: 1e-2, MaxSteps: 3, LoggingSteps: 1, Seed: 7}
		ra := RunArgs{PerDeviceTrainBatchSize: len(pairs), PadID: g.PadID}
		if orpo {
			_, err = (&ORPOTrainer{Model: m, TrainSet: pairs, Adapter: spy, Sinks: collect(&entries), Config: ORPOConfig{Args: args, RunArgs: ra}}).Train(context.Background())
		} else {
			_, err = (&Trainer{Model: m, TrainSet: pairs, Adapter: spy, Sinks: collect(&entries), Config: Config{Args: args, RunArgs: ra}}).Train(context.Background())
		}
		require.NoError(t, err)
		return spy, entries, out
	}
	for _, orpo := range []bool{false, true} {
		spy, plain, out := run(orpo, 0)
		require.NotEmpty(t, spy.seeds, "orpo=%v: training graphs are built on the adapter's TrainingDecoder", orpo)
		for _, s := range spy.seeds {
			assert.Equal(t, uint64(7), s)
		}
		assert.FileExists(t, filepath.Join(out, lora.WeightsFile))
		assert.NoFileExists(t, filepath.Join(out, "model.safetensors"))
		_, dropped, _ := run(orpo, 0.5)
		assert.NotEqual(t, plain[2]["loss"], dropped[2]["loss"], "orpo=%v: lora_dropout changes training", orpo)
	}
}
