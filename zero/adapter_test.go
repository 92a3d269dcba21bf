package zero_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/dpo"
	"handbook/lora"
	"handbook/model"
	"handbook/train"
	"handbook/zero"
)

// TestStage3LoRAAndDPO trains a LoRA adapter with the causal-LM objective and with DPO (the
// adapter-disabled base as reference, in the same graph) through train.Engine, on one device and
// with stage 3 over all test devices: every step's loss must agree.
func TestStage3LoRAAndDPO(t *testing.T) {
	b := xlaBackend(t)
	cfg, err := model.LoadConfig(tinyModel)
	require.NoError(t, err)
	batches := listBatches(sftBatches(steps*accum, cfg.VocabSize, 3))
	for _, tc := range []struct {
		name      string
		objective func(a *lora.Adapter) train.Objective
	}{
		{"lora sft", func(*lora.Adapter) train.Objective { return train.CausalLM{} }},
		{"lora dpo", func(a *lora.Adapter) train.Objective {
			return dpo.Objective{LossConfig: dpo.DefaultLossConfig(), Reference: a.BaseDecoder()}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(placement train.Placement) lossSink {
				m, err := model.Load(b, tinyModel, model.LoadOptions{})
				require.NoError(t, err)
				a, err := lora.Attach(m, lora.Config{R: 4, Alpha: 8, TargetModules: []string{"all-linear"}}, 5)
				require.NoError(t, err)
				losses := lossSink{}
				e := &train.Engine{Model: m, Objective: tc.objective(a), Adapter: a, Placement: placement,
					Sinks: []train.Sink{losses}, Args: train.Args{
						LearningRate: learningRate, LRSchedulerType: "constant", MaxSteps: steps, GradientAccumulationSteps: accum,
						MaxGradNorm: maxNorm, Optimizer: adamW(), LoggingSteps: 1,
					}}
				_, err = e.Train(context.Background(), batches, nil)
				require.NoError(t, err)
				require.Len(t, losses, steps)
				return losses
			}
			ref := run(nil)
			got := run(&zero.Strategy{Stage: zero.Stage3, Devices: testDevices})
			for step, want := range ref {
				assert.InEpsilonf(t, want, got[step], 1e-5, "step %d", step)
			}
			assert.NotEqual(t, ref[1], ref[steps], "the loss moves: the adapter trains")
		})
	}
}
