package zero_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/model"
	"handbook/train"
	"handbook/zero"
)

const (
	tinyModel             = "../testdata/models/llama_gqa"
	steps, accum          = 10, 2
	batchRows, seqLen     = 8, 16
	learningRate, maxNorm = 1e-3, 1.0
)

// sftBatches are SFT-shaped micro-batches: a 4-token prompt masked out of the labels, completions
// of varying length, right padding masked out of attention and labels.
func sftBatches(n int, vocab int, seed uint64) []map[string]*tensors.Tensor {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]map[string]*tensors.Tensor, n)
	for b := range out {
		ids := make([]int32, batchRows*seqLen)
		labels := make([]int32, batchRows*seqLen)
		mask := make([]int32, batchRows*seqLen)
		for r := 0; r < batchRows; r++ {
			length := seqLen - rng.IntN(6)
			for j := 0; j < seqLen; j++ {
				k := r*seqLen + j
				labels[k] = model.IgnoreIndex
				if j < length {
					ids[k] = int32(rng.IntN(vocab))
					mask[k] = 1
					if j >= 4 {
						labels[k] = ids[k]
					}
				}
			}
		}
		out[b] = map[string]*tensors.Tensor{
			"input_ids":      tensors.FromFlatDataAndDimensions(ids, batchRows, seqLen),
			"labels":         tensors.FromFlatDataAndDimensions(labels, batchRows, seqLen),
			"attention_mask": tensors.FromFlatDataAndDimensions(mask, batchRows, seqLen),
		}
	}
	return out
}

type listBatches []map[string]*tensors.Tensor

func (l listBatches) Len() int { return len(l) }
func (l listBatches) Batch(_, i int) (map[string]*tensors.Tensor, error) {
	return l[i], nil
}

type lossSink map[int]float64

func (s lossSink) Log(step int, m map[string]float64) error {
	if v, ok := m["loss"]; ok {
		s[step] = v
	}
	return nil
}

func adamW() train.AdamW {
	o := train.DefaultAdamW()
	o.WeightDecay = 0.01
	return o
}

// referenceLosses trains on one device with train.Engine, the single-device trainer.
func referenceLosses(t *testing.T, b compute.Backend, batches []map[string]*tensors.Tensor, adapter train.Adapter) (lossSink, map[string]*tensors.Tensor) {
	m, err := model.Load(b, tinyModel, model.LoadOptions{})
	require.NoError(t, err)
	sink := lossSink{}
	e := &train.Engine{Model: m, Objective: train.CausalLM{}, Adapter: adapter, Sinks: []train.Sink{sink}, Args: train.Args{
		LearningRate: learningRate, LRSchedulerType: "constant", MaxSteps: steps, GradientAccumulationSteps: accum,
		MaxGradNorm: maxNorm, Optimizer: adamW(), LoggingSteps: 1,
	}}
	_, err = e.Train(context.Background(), listBatches(batches), nil)
	require.NoError(t, err)
	require.Len(t, sink, steps)
	return sink, m.Weights
}

// onlyMLP is a train.Adapter that trains the model's MLP weights and freezes the rest, the shape of
// an adapter run without the lora package: frozen weights are graph inputs without gradient or
// optimizer state.
type onlyMLP struct{}

func (onlyMLP) Trainable(name string) bool                                  { return strings.Contains(name, ".mlp.") }
func (onlyMLP) SaveWeights(string) error                                    { return nil }
func (onlyMLP) LoadWeights(string) (map[string]*tensors.Tensor, error)      { return nil, nil }
func (onlyMLP) TrainingDecoder(dec *model.Decoder, _ uint64) *model.Decoder { return dec }
func (onlyMLP) BaseDecoder() *model.Decoder                                 { return nil }

// adapterFor is onlyMLP for a frozen base, else none (a full fine-tune).
func adapterFor(frozen bool) train.Adapter {
	if frozen {
		return onlyMLP{}
	}
	return nil
}

// TestStagesMatchOneDevice is the acceptance test of the ZeRO strategy: a 10-step SFT-shaped run
// with gradient accumulation, clipping and weight decay on 4 devices gives, at every step, the loss
// of train.Engine on one device (fp32, 1e-5 relative) for stages 0–3 — and for stage 3 with a
// frozen base — and each device holds the bytes of parameters, gradients and optimizer state the
// stage's formula says (within 5%), read from the backend's buffers.
func TestStagesMatchOneDevice(t *testing.T) {
	b := xlaBackend(t)
	cfg, err := model.LoadConfig(tinyModel)
	require.NoError(t, err)
	batches := sftBatches(steps*accum, cfg.VocabSize, 1)
	refs := map[bool]struct {
		losses  lossSink
		weights map[string]*tensors.Tensor
	}{}
	for _, frozen := range []bool{false, true} {
		l, w := referenceLosses(t, b, batches, adapterFor(frozen))
		refs[frozen] = struct {
			losses  lossSink
			weights map[string]*tensors.Tensor
		}{l, w}
	}
	cases := []struct {
		stage  zero.Stage
		frozen bool
	}{{zero.Stage0, false}, {zero.Stage1, false}, {zero.Stage2, false}, {zero.Stage3, false}, {zero.Stage3, true}}
	for _, tc := range cases {
		name := fmt.Sprintf("stage%d", tc.stage)
		if tc.frozen {
			name += "-frozen-base"
		}
		t.Run(name, func(t *testing.T) {
			ref, refWeights := refs[tc.frozen].losses, refs[tc.frozen].weights
			adapter := adapterFor(tc.frozen)
			stage := tc.stage
			m, err := model.Load(b, tinyModel, model.LoadOptions{})
			require.NoError(t, err)
			var numTrainable, numFrozen int64
			for n, w := range m.Weights {
				if adapter == nil || adapter.Trainable(n) {
					numTrainable += int64(w.Shape().Size())
				} else {
					numFrozen += int64(w.Shape().Size())
				}
			}
			strategy := &zero.Strategy{Stage: stage, Devices: testDevices}
			s := &train.ShardedStep{Model: m, Objective: train.CausalLM{}, Adapter: adapter, Optimizer: adamW(), MaxGradNorm: maxNorm, Placement: strategy}
			defer s.Close()
			var worst float64
			for step := 1; step <= steps; step++ {
				res, err := s.Step(context.Background(), batches[(step-1)*accum:step*accum], step, learningRate)
				require.NoError(t, err)
				assert.InEpsilonf(t, ref[step], res.Loss, 1e-5, "step %d: loss %.8f on %d devices, %.8f on one", step, res.Loss, testDevices, ref[step])
				worst = math.Max(worst, math.Abs(res.Loss-ref[step])/math.Abs(ref[step]))
			}
			t.Logf("largest relative loss difference over %d steps: %.2g (step 1 loss %.6f, step %d loss %.6f)", steps, worst, ref[1], steps, ref[steps])
			weights, err := s.Weights()
			require.NoError(t, err)
			for n, w := range refWeights {
				got, want := tensors.MustCopyFlatData[float32](weights[n]), tensors.MustCopyFlatData[float32](w)
				require.Len(t, got, len(want), n)
				var maxDiff float64
				for i := range got {
					maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
				}
				assert.Lessf(t, maxDiff, 1e-4, "weight %s after %d steps", n, steps)
			}

			// fp32 training with AdamW: 4 bytes of parameter, 4 of gradient, 8 of state per
			// trainable weight; frozen weights hold 4 bytes, partitioned at stage 3 only.
			want := zero.ModelStates(stage, testDevices, numTrainable, zero.Precision{ParamBytes: 4, GradBytes: 4, OptimizerBytes: 8})
			frozenBytes := 4 * numFrozen
			if stage >= zero.Stage3 {
				frozenBytes /= int64(testDevices)
			}
			want.Parameters += frozenBytes
			r := s.Resident()
			for d := 0; d < testDevices; d++ {
				if d == 0 {
					t.Logf("device 0: params %d (formula %d), grads %d (%d), optimizer state %d (%d)",
						r.Params[d], want.Parameters, r.Grads[d], want.Gradients, r.OptimizerState[d], want.Optimizer)
				}
				assert.InEpsilon(t, want.Parameters, r.Params[d], 0.05, "parameters on device %d", d)
				assert.InEpsilon(t, want.Gradients, r.Grads[d], 0.05, "gradients on device %d", d)
				assert.InEpsilon(t, want.Optimizer, r.OptimizerState[d], 0.05, "optimizer state on device %d", d)
			}
		})
	}
}

// TestShardedStepBadInput: a batch the devices cannot split evenly and a stage outside 0–3 are
// errors, not panics.
func TestShardedStepBadInput(t *testing.T) {
	b := xlaBackend(t)
	m, err := model.Load(b, tinyModel, model.LoadOptions{})
	require.NoError(t, err)
	s := &train.ShardedStep{Model: m, Objective: train.CausalLM{}, Placement: &zero.Strategy{Stage: zero.Stage2, Devices: testDevices}}
	defer s.Close()
	ids := tensors.FromFlatDataAndDimensions(make([]int32, 6*8), 6, 8)
	_, err = s.Step(context.Background(), []map[string]*tensors.Tensor{{"input_ids": ids, "labels": ids}}, 1, 1e-3)
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("multiple of the %d devices", testDevices))

	bad := &train.ShardedStep{Model: m, Objective: train.CausalLM{}, Placement: &zero.Strategy{Stage: 4, Devices: testDevices}}
	_, err = bad.Step(context.Background(), []map[string]*tensors.Tensor{{"input_ids": ids, "labels": ids}}, 1, 1e-3)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "stage 4")
}

// TestEngineWithPlacement: train.Engine with a stage-3 Placement trains, evaluates and checkpoints
// as the single-device Engine does (same losses, eval loss and final weights).
func TestEngineWithPlacement(t *testing.T) {
	b := xlaBackend(t)
	cfg, err := model.LoadConfig(tinyModel)
	require.NoError(t, err)
	batches := sftBatches(steps*accum, cfg.VocabSize, 1)
	evalSet := listBatches(sftBatches(2, cfg.VocabSize, 2))
	runEngine := func(placement train.Placement) (lossSink, lossSink, map[string]*tensors.Tensor) {
		m, err := model.Load(b, tinyModel, model.LoadOptions{})
		require.NoError(t, err)
		losses, evals := lossSink{}, lossSink{}
		e := &train.Engine{Model: m, Objective: train.CausalLM{}, Placement: placement,
			Sinks: []train.Sink{losses, evalSink(evals)}, Args: train.Args{
				OutputDir: t.TempDir(), LearningRate: learningRate, LRSchedulerType: "cosine", WarmupSteps: 2,
				MaxSteps: steps, GradientAccumulationSteps: accum, MaxGradNorm: maxNorm, Optimizer: adamW(),
				LoggingSteps: 1, EvalSteps: 5, SaveSteps: 5,
			}}
		_, err = e.Train(context.Background(), listBatches(batches), evalSet)
		require.NoError(t, err)
		return losses, evals, m.Weights
	}
	refLoss, refEval, refWeights := runEngine(nil)
	gotLoss, gotEval, gotWeights := runEngine(&zero.Strategy{Stage: zero.Stage3, Devices: testDevices})
	require.Len(t, gotLoss, steps)
	for step, want := range refLoss {
		assert.InEpsilonf(t, want, gotLoss[step], 1e-5, "step %d", step)
	}
	require.Len(t, gotEval, 2)
	for step, want := range refEval {
		assert.InEpsilonf(t, want, gotEval[step], 1e-5, "eval at step %d", step)
	}
	for n, w := range refWeights {
		got, want := tensors.MustCopyFlatData[float32](gotWeights[n]), tensors.MustCopyFlatData[float32](w)
		var maxDiff float64
		for i := range got {
			maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
		}
		assert.Lessf(t, maxDiff, 1e-4, "weight %s", n)
	}
}

// evalSink records eval_loss by step.
type evalSink map[int]float64

func (s evalSink) Log(step int, m map[string]float64) error {
	if v, ok := m["eval_loss"]; ok {
		s[step] = v
	}
	return nil
}
