package zero_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/data"
	"handbook/model"
	"handbook/sft"
	"handbook/train"
	"handbook/zero"
)

// TestBatchRowsIsPerDevice: a trainer's micro-batch is per_device_train_batch_size rows per
// data-parallel replica; a nil placement (or a nil *zero.Strategy) is one device, and a bad
// placement or batch size is an error naming it, not a panic.
func TestBatchRowsIsPerDevice(t *testing.T) {
	for _, tc := range []struct {
		name      string
		placement train.Placement
		perDevice int
		want      int
		err       string
	}{
		{"no placement", nil, 6, 6, ""},
		{"typed nil strategy", (*zero.Strategy)(nil), 6, 6, ""},
		{"one device", &zero.Strategy{Stage: zero.Stage3, Devices: 1}, 6, 6, ""},
		{"six per device on four", &zero.Strategy{Stage: zero.Stage3, Devices: 4}, 6, 24, ""},
		{"odd per device", &zero.Strategy{Stage: zero.Stage1, Devices: 4}, 3, 12, ""},
		{"bad stage", &zero.Strategy{Stage: 5, Devices: 4}, 6, 0, "placement: zero: stage 5 is not a ZeRO stage"},
		{"no device", &zero.Strategy{Stage: zero.Stage3}, 6, 0, "device count must be at least 1"},
		{"zero batch", nil, 0, 0, "per_device_train_batch_size must be positive, got 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := train.BatchRows(tc.placement, tc.perDevice)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	var s *zero.Strategy
	assert.ErrorContains(t, s.Validate(), "nil *zero.Strategy")
	assert.Nil(t, s.Mesh())
	assert.Equal(t, 1, s.DataParallel())
}

// tinySamples are n SFT samples of random lengths over the tiny model's vocabulary.
func tinySamples(n, vocab int) []data.Sample {
	rng := rand.New(rand.NewPCG(3, 4))
	out := make([]data.Sample, n)
	for i := range out {
		ids := make([]int32, 6+rng.IntN(10))
		for j := range ids {
			ids[j] = int32(rng.IntN(vocab))
		}
		out[i] = data.Sample{InputIDs: ids, Labels: ids}
	}
	return out
}

// TestTypedNilPlacementIsOneDevice: a nil *zero.Strategy in a trainer's Placement field trains on
// one device, as a nil Placement does, while a strategy asking for more devices than the backend
// has is an error before anything compiles.
func TestTypedNilPlacementIsOneDevice(t *testing.T) {
	b, _, err := backend.New()
	require.NoError(t, err)
	if b.NumDevices() > 1 {
		t.Skipf("backend %s has %d devices; this test needs a one-device backend", b.Name(), b.NumDevices())
	}
	run := func(p train.Placement) (sft.Result, error) {
		m, err := model.Load(b, tinyModel, model.LoadOptions{})
		require.NoError(t, err)
		tr := &sft.Trainer{Model: m, TrainSet: tinySamples(8, m.Config.VocabSize), Placement: p,
			Config: sft.Config{Args: train.Args{OutputDir: t.TempDir(), MaxSteps: 2, LearningRate: 1e-3}, PerDeviceTrainBatchSize: 4}}
		return tr.Train(context.Background())
	}
	var nilStrategy *zero.Strategy
	res, err := run(nilStrategy)
	require.NoError(t, err)
	assert.Equal(t, 2, res.GlobalStep)
	_, err = run(&zero.Strategy{Stage: zero.Stage3, Devices: 4})
	assert.ErrorContains(t, err, "the mesh has 4 devices but backend")
}

// TestOddBatchUnderPlacement is the trap of a per-device batch the device count does not divide
// (3 rows on 4 devices, which the library once took for the global batch): the micro-batch is 3
// rows per device, the epoch's last partial batch is completed as accelerate's even_batches does,
// and step 1 (the same rows) has the loss of one device taking them all.
func TestOddBatchUnderPlacement(t *testing.T) {
	b := xlaBackend(t)
	const perDevice = 3
	samples := perDevice*testDevices + 1 // one full micro-batch and one of a single sample
	run := func(p train.Placement, batch int) []float64 {
		m, err := model.Load(b, tinyModel, model.LoadOptions{})
		require.NoError(t, err)
		losses := lossSink{}
		tr := &sft.Trainer{Model: m, TrainSet: tinySamples(samples, m.Config.VocabSize), Placement: p, Sinks: []train.Sink{losses},
			Config: sft.Config{Args: train.Args{OutputDir: t.TempDir(), MaxSteps: 2, LearningRate: 1e-3, LoggingSteps: 1},
				PerDeviceTrainBatchSize: batch}}
		res, err := tr.Train(context.Background())
		require.NoError(t, err)
		require.Equal(t, 2, res.GlobalStep)
		require.Len(t, losses, 2)
		return []float64{losses[1], losses[2]}
	}
	one := run(nil, perDevice*testDevices)
	sharded := run(&zero.Strategy{Stage: zero.Stage3, Devices: testDevices}, perDevice)
	assert.InEpsilon(t, one[0], sharded[0], 1e-5, "step 1: the same rows")
	assert.NotEqual(t, sharded[0], sharded[1], "step 2 trains on the completed last batch")
}
