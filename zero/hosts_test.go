package zero_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/gomlx/compute/distributed"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/core/tensors/dtensor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/model"
	"handbook/train"
	"handbook/zero"
)

func TestFromAccelerateConfigMachines(t *testing.T) {
	for _, tc := range []struct {
		file           string
		want           zero.Strategy
		warning, error string
	}{
		{file: "made_zero3_two_machines.yaml", want: zero.Strategy{Stage: zero.Stage3, Devices: 16, Nodes: 2}},
		{file: "made_fsdp_hybrid_two_machines.yaml", want: zero.Strategy{Stage: zero.Stage3, Devices: 16, Nodes: 2, Hybrid: true}},
		{file: "made_fsdp_hybrid_zero2.yaml", want: zero.Strategy{Stage: zero.Stage2, Devices: 2, Hybrid: true},
			warning: "_HYBRID_SHARD_ZERO2 shards within a node and replicates across nodes; on one machine it is stage 2 over every device"},
		{file: "made_zero3_uneven_machines.yaml", error: "8 devices cannot be spread evenly over 3 nodes"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			s, warnings, err := zero.FromAccelerateConfig("testdata/" + tc.file)
			if tc.error != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.error)
				assert.Contains(t, err.Error(), tc.file)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want.Stage, s.Stage)
			assert.Equal(t, tc.want.Devices, s.Devices)
			assert.Equal(t, tc.want.Nodes, s.Nodes)
			assert.Equal(t, tc.want.Hybrid, s.Hybrid)
			if tc.warning == "" {
				assert.Empty(t, warnings)
			} else {
				require.Len(t, warnings, 1)
				assert.Contains(t, warnings[0], tc.warning)
			}
		})
	}
}

// axesOf renders a spec as the mesh axes of each tensor axis: "[node,local] []".
func axesOf(spec *distributed.ShardingSpec) string {
	if spec == nil {
		return "replicated"
	}
	return fmt.Sprint(spec.Axes)
}

func TestNodeLocalPlacement(t *testing.T) {
	full := &zero.Strategy{Stage: zero.Stage3, Devices: 4, Nodes: 2}
	hybrid := &zero.Strategy{Stage: zero.Stage3, Devices: 4, Nodes: 2, Hybrid: true}
	mesh := full.Mesh()
	require.NotNil(t, mesh)
	assert.Equal(t, []string{zero.NodeAxis, zero.LocalAxis}, mesh.AxesNames())
	assert.Equal(t, []int{2, 2}, mesh.AxesSizes())

	f32 := func(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float32, dims...) }
	// Full sharding splits over all 4 devices: [6, 4] only on its second axis; hybrid over a
	// node's 2 devices: already on its first.
	assert.Equal(t, "[[node local] []]", axesOf(full.ParamSpec(f32(8, 6))))
	assert.Equal(t, "[[] [node local]]", axesOf(full.ParamSpec(f32(6, 4))))
	assert.Equal(t, "[[local] []]", axesOf(hybrid.ParamSpec(f32(6, 4))))
	assert.Equal(t, "replicated", axesOf(full.ParamSpec(f32(6))))
	assert.Equal(t, "[[local]]", axesOf(hybrid.ParamSpec(f32(6))))
	assert.Equal(t, "replicated", axesOf((&zero.Strategy{Stage: zero.Stage1, Devices: 4, Nodes: 2, Hybrid: true}).ParamSpec(f32(8, 6))))
	// The batch is split over every device, hybrid or not.
	for _, s := range []*zero.Strategy{full, hybrid} {
		assert.Equal(t, "[[node local] []]", axesOf(s.BatchSpec(shapes.Make(dtypes.Int32, 8, 16))))
	}

	// Host n's devices (n·2, n·2+1) hold rows [4n, 4n+4) of an 8-row batch: each host reads only
	// its rows of the global batch.
	rows := make([]int32, 8)
	for i := range rows {
		rows[i] = int32(i)
	}
	dt, err := dtensor.ShardTensor(full.BatchSpec(shapes.Make(dtypes.Int32, 8)), tensors.FromValue(rows))
	require.NoError(t, err)
	shards := dt.Shards()
	for node := range 2 {
		var got []int32
		for local := range 2 {
			got = append(got, tensors.MustCopyFlatData[int32](shards[node*2+local])...)
		}
		assert.Equal(t, rows[4*node:4*node+4], got, "rows held by node %d", node)
	}
	// Hybrid: a partitioned weight is replicated across nodes (device l of node 0 and of node 1
	// hold the same partition).
	w := tensors.FromFlatDataAndDimensions([]float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 6, 2)
	dt, err = dtensor.ShardTensor(hybrid.ParamSpec(w.Shape()), w)
	require.NoError(t, err)
	shards = dt.Shards()
	for local := range 2 {
		assert.Equal(t, tensors.MustCopyFlatData[float32](shards[local]), tensors.MustCopyFlatData[float32](shards[2+local]))
		assert.Len(t, tensors.MustCopyFlatData[float32](shards[local]), 6)
	}

	assert.ErrorContains(t, (&zero.Strategy{Stage: zero.Stage3, Devices: 6, Nodes: 4}).Validate(), "6 devices cannot be spread evenly over 4 nodes")
	assert.ErrorContains(t, (&zero.Strategy{Stage: zero.Stage3, Devices: 4, Nodes: -1}).Validate(), "node count must not be negative")
}

// TestNodeLocalMeshMatchesOneDevice runs ZeRO stages 0 and 3 on a ("node", "local") = 2 × 2 mesh —
// partitions over both axes, and the hybrid (FSDP HYBRID_SHARD, _HYBRID_SHARD_ZERO2) over "local"
// only — in one process with 4 devices: the 10-step losses and final weights are those of one
// device, and each device holds the bytes its partition group says. (The mesh is what a 2-host
// job would use; the hosts themselves are not exercised here: see docs/MULTINODE.md.)
func TestNodeLocalMeshMatchesOneDevice(t *testing.T) {
	if testDevices != 4 {
		t.Skipf("the 2 × 2 mesh needs 4 devices, ZERO_TEST_DEVICES=%d", testDevices)
	}
	b := xlaBackend(t)
	cfg, err := model.LoadConfig(tinyModel)
	require.NoError(t, err)
	batches := sftBatches(steps*accum, cfg.VocabSize, 1)
	ref, refWeights := referenceLosses(t, b, batches, nil)
	// Stage 0 splits only the batch (over both axes); stage 3 partitions parameters, gradients
	// and optimizer state over both axes, so it covers the placements of stages 1 and 2 too.
	for _, strategy := range []zero.Strategy{
		{Stage: zero.Stage0, Devices: 4, Nodes: 2},
		{Stage: zero.Stage3, Devices: 4, Nodes: 2},
		{Stage: zero.Stage2, Devices: 4, Nodes: 2, Hybrid: true},
		{Stage: zero.Stage3, Devices: 4, Nodes: 2, Hybrid: true},
	} {
		name := fmt.Sprintf("stage%d", strategy.Stage)
		group := 4
		if strategy.Hybrid {
			name, group = name+"-hybrid", 2
		}
		t.Run(name, func(t *testing.T) {
			m, err := model.Load(b, tinyModel, model.LoadOptions{})
			require.NoError(t, err)
			var params int64
			for _, w := range m.Weights {
				params += int64(w.Shape().Size())
			}
			s := &train.ShardedStep{Model: m, Objective: train.CausalLM{}, Optimizer: adamW(), MaxGradNorm: maxNorm, Placement: &strategy}
			defer s.Close()
			var worst float64
			for step := 1; step <= steps; step++ {
				res, err := s.Step(context.Background(), batches[(step-1)*accum:step*accum], step, learningRate)
				require.NoError(t, err)
				assert.InEpsilonf(t, ref[step], res.Loss, 1e-6, "step %d", step)
				worst = math.Max(worst, math.Abs(res.Loss-ref[step])/math.Abs(ref[step]))
			}
			t.Logf("largest relative loss difference over %d steps: %.2g", steps, worst)
			weights, err := s.Weights()
			require.NoError(t, err)
			for n, w := range refWeights {
				got, want := tensors.MustCopyFlatData[float32](weights[n]), tensors.MustCopyFlatData[float32](w)
				var maxDiff float64
				for i := range got {
					maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
				}
				assert.Lessf(t, maxDiff, 1e-4, "weight %s after %d steps", n, steps)
			}
			want := zero.ModelStates(strategy.Stage, group, params, zero.Precision{ParamBytes: 4, GradBytes: 4, OptimizerBytes: 8})
			r := s.Resident()
			for d := range 4 {
				assert.InEpsilon(t, want.Parameters, r.Params[d], 0.05, "parameters on device %d", d)
				assert.InEpsilon(t, want.Gradients, r.Grads[d], 0.05, "gradients on device %d", d)
				assert.InEpsilon(t, want.Optimizer, r.OptimizerState[d], 0.05, "optimizer state on device %d", d)
			}
		})
	}
}
