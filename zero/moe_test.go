package zero_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/model"
	"handbook/train"
	"handbook/zero"
)

// TestMoEUnderZeRO3: a mixture-of-experts model (Mixtral: routed experts, the router's
// load-balancing loss in the objective) trains on 4 devices with ZeRO-3 as on one device, step for
// step: the sort, block layout and gathers of the routing partition like the dense layers.
func TestMoEUnderZeRO3(t *testing.T) {
	b := xlaBackend(t)
	const fixture = "../testdata/models/mixtral_moe"
	cfg, err := model.LoadConfig(fixture)
	require.NoError(t, err)
	batches := sftBatches(4, cfg.VocabSize, 3)
	run := func(placement train.Placement) lossSink {
		m, err := model.Load(b, fixture, model.LoadOptions{})
		require.NoError(t, err)
		m.Decoder.RouterAuxLossCoef = cfg.RouterAuxLossCoef
		losses := lossSink{}
		e := &train.Engine{Model: m, Objective: train.CausalLM{}, Placement: placement, Sinks: []train.Sink{losses},
			Args: train.Args{LearningRate: learningRate, LRSchedulerType: "constant", MaxSteps: 4, MaxGradNorm: maxNorm,
				Optimizer: adamW(), LoggingSteps: 1}}
		_, err = e.Train(context.Background(), listBatches(batches), nil)
		require.NoError(t, err)
		return losses
	}
	want := run(nil)
	got := run(&zero.Strategy{Stage: zero.Stage3, Devices: testDevices})
	require.Len(t, got, 4)
	for step, w := range want {
		assert.InEpsilonf(t, w, got[step], 1e-5, "step %d", step)
	}
}
