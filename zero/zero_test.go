package zero_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/model"
	"handbook/zero"
)

func TestFromAccelerateConfig(t *testing.T) {
	tests := []struct {
		file     string
		stage    zero.Stage
		devices  int
		warnings int
		err      string
	}{
		{file: "ddp.yaml", stage: zero.Stage0, devices: 8},
		{file: "legacy_multi_gpu.yaml", stage: zero.Stage0, devices: 8},
		{file: "zero3.yaml", stage: zero.Stage3, devices: 8},
		{file: "legacy_deepspeed_zero3.yaml", stage: zero.Stage3, devices: 8},
		{file: "fsdp.yaml", stage: zero.Stage3, devices: 8},
		{file: "legacy_fsdp.yaml", stage: zero.Stage3, devices: 8},
		{file: "made_fsdp_shard_grad_op.yaml", stage: zero.Stage2, devices: 2},
		{file: "made_zero1.yaml", stage: zero.Stage1, devices: 4},
		{file: "made_zero_file.yaml", stage: zero.Stage2, devices: 8},
		{file: "legacy_fsdp_qlora.yaml", err: "fsdp_offload_params: true asks to offload"},
		{file: "made_zero2_offload.yaml", err: "offload_optimizer_device: cpu asks to offload"},
		{file: "made_zero5.yaml", err: "stage 5 is not a ZeRO stage"},
		{file: "no_such.yaml", err: "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			s, warnings, err := zero.FromAccelerateConfig("testdata/" + tc.file)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.stage, s.Stage)
			assert.Equal(t, tc.devices, s.Devices)
			assert.Len(t, warnings, tc.warnings)
		})
	}
}

func TestStrategyValidation(t *testing.T) {
	for _, s := range []zero.Strategy{{Stage: -1, Devices: 2}, {Stage: 4, Devices: 2}, {Stage: 1, Devices: 0}} {
		assert.Error(t, s.Validate(), "%+v", s)
		assert.Nil(t, s.Mesh())
	}
	s := zero.Strategy{Stage: zero.Stage2, Devices: 4}
	require.NoError(t, s.CheckBatch(8))
	err := s.CheckBatch(6)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "6 rows cannot be split evenly over 4 devices")
}

// TestPlacementByStage: what each stage partitions, and that a tensor no axis of which the device
// count divides stays replicated.
func TestPlacementByStage(t *testing.T) {
	w := shapes.Make(dtypes.Float32, 96, 64)
	odd := shapes.Make(dtypes.Float32, 7)
	for stage := zero.Stage0; stage <= zero.Stage3; stage++ {
		s := &zero.Strategy{Stage: stage, Devices: 4}
		assert.Equal(t, stage >= zero.Stage3, s.ParamSpec(w) != nil, "stage %d params", stage)
		assert.Equal(t, stage >= zero.Stage2, s.GradSpec(w) != nil, "stage %d grads", stage)
		assert.Equal(t, stage >= zero.Stage1, s.StateSpec(w) != nil, "stage %d optimizer state", stage)
		assert.Nil(t, s.StateSpec(odd))
		require.NotNil(t, s.BatchSpec(shapes.Make(dtypes.Int32, 8, 16)))
	}
	s := &zero.Strategy{Stage: zero.Stage3, Devices: 4}
	assert.Equal(t, 0, s.PartitionAxis(w))
	assert.Equal(t, 1, s.PartitionAxis(shapes.Make(dtypes.Float32, 6, 8)))
	assert.Equal(t, -1, s.PartitionAxis(odd))
}

// TestModelStatesMatchZeROPaper: the paper's per-device formulas (§5, Figure 1) with K = 12.
func TestModelStatesMatchZeROPaper(t *testing.T) {
	const psi, n = 7_500_000_000, 64 // the paper's Figure 1 example: 7.5B, 64 devices
	want := map[zero.Stage]float64{0: 16.0 * psi, 1: 4.0*psi + 12.0*psi/n, 2: 2.0*psi + 14.0*psi/n, 3: 16.0 * psi / n}
	for stage, bytes := range want {
		got := zero.ModelStates(stage, n, int64(psi), zero.MixedPrecisionAdam)
		assert.InEpsilon(t, bytes, float64(got.ModelStates()), 1e-9, "stage %d", stage)
	}
	// The paper's Figure 1 rounds these to 120 GB, 31.4 GB, 16.6 GB and 1.88 GB.
	assert.InDelta(t, 31.4e9, float64(zero.ModelStates(1, n, int64(psi), zero.MixedPrecisionAdam).ModelStates()), 0.1e9)
	assert.InDelta(t, 16.6e9, float64(zero.ModelStates(2, n, int64(psi), zero.MixedPrecisionAdam).ModelStates()), 0.1e9)
	assert.InDelta(t, 1.88e9, float64(zero.ModelStates(3, n, int64(psi), zero.MixedPrecisionAdam).ModelStates()), 0.01e9)
}

// mistral7B is Ψ for Mistral-7B from its architecture: embeddings and lm_head, per layer q/o
// (h×h), k/v (h×1024), three MLP matrices (h×14336) and two norms, and the final norm.
const mistral7B = 2*32000*4096 + 32*(2*4096*4096+2*4096*1024+3*4096*14336+2*4096) + 4096

// TestEstimateMistral7B: train.Engine's model states for Mistral-7B on 8 devices with bf16 weights
// — the bf16 working copy, a float32 gradient, and float32 master + AdamW moments (2 + 4 + 12 = 18
// bytes per parameter) — partitioned per stage; with float32 weights 16 bytes (no master).
func TestEstimateMistral7B(t *testing.T) {
	cfg, err := model.LoadConfig("testdata/mistral7b_config.json")
	require.NoError(t, err)
	for stage := zero.Stage0; stage <= zero.Stage3; stage++ {
		mem, counts, err := zero.Estimate(cfg, zero.EstimateOptions{Stage: stage, Devices: 8})
		require.NoError(t, err)
		assert.Equal(t, int64(mistral7B), counts.Total)
		want := zero.ModelStates(stage, 8, mistral7B, zero.TrainingPrecision(2))
		assert.InEpsilon(t, want.ModelStates(), mem.ModelStates(), 0.01, "stage %d", stage)
	}
	mem, _, err := zero.Estimate(cfg, zero.EstimateOptions{Stage: zero.Stage3, Devices: 8})
	require.NoError(t, err)
	assert.InEpsilon(t, 18.0*mistral7B/8, float64(mem.ModelStates()), 0.01)
	mem, _, err = zero.Estimate(cfg, zero.EstimateOptions{Stage: zero.Stage3, Devices: 8, WeightBytes: 4})
	require.NoError(t, err)
	assert.InEpsilon(t, 16.0*mistral7B/8, float64(mem.ModelStates()), 0.01)
	assert.Equal(t, zero.Precision{ParamBytes: 2, GradBytes: 4, OptimizerBytes: 12}, zero.TrainingPrecision(2))
}

// TestEstimateLoRA7B: LoRA r=16 on every linear layer of Mistral-7B trains r·(in+out) parameters
// per matrix; with gradient checkpointing a 2048-token row fits a 24 GB card on one device, without
// it it does not; QLoRA's weights and state fit in 10 GB.
func TestEstimateLoRA7B(t *testing.T) {
	cfg, err := model.LoadConfig("testdata/mistral7b_config.json")
	require.NoError(t, err)
	const perLayer = 16 * (2*(4096+4096) + 2*(4096+1024) + 3*(4096+14336))
	opts := zero.EstimateOptions{Stage: zero.Stage0, Devices: 1, LoRA: &zero.LoRA{Rank: 16}, Seq: 2048, Batch: 1, GradientCheckpointing: true}
	mem, counts, err := zero.Estimate(cfg, opts)
	require.NoError(t, err)
	assert.Equal(t, int64(32*perLayer), counts.Trainable)
	t.Logf("LoRA r=16 all-linear, seq 2048, checkpointing: %.2f GB (model states %.2f GB, activations %.2f GB)",
		float64(mem.Total())/1e9, float64(mem.ModelStates())/1e9, float64(mem.Activations)/1e9)
	assert.Less(t, mem.Total(), int64(24e9))
	opts.GradientCheckpointing = false
	full, _, err := zero.Estimate(cfg, opts)
	require.NoError(t, err)
	t.Logf("without checkpointing: %.2f GB", float64(full.Total())/1e9)
	assert.Greater(t, full.Total(), int64(24e9))

	q, _, err := zero.Estimate(cfg, zero.EstimateOptions{Stage: zero.Stage0, Devices: 1, LoRA: &zero.LoRA{Rank: 16, Quantized4Bit: true}})
	require.NoError(t, err)
	t.Logf("QLoRA weights + state: %.2f GB", float64(q.ModelStates())/1e9)
	assert.LessOrEqual(t, q.ModelStates(), int64(10e9))
}

// TestEstimateSeedModels: the parameters of Mixtral-8x22B (the zephyr-141b-A35b recipe's base) and
// StarCoder2-15B (starchat2-15b's) as transformers builds them, the adapter PEFT puts on them with
// all-linear at r=16 (Mixtral: attention, router and experts), both recorded by
// tools/oracle/param_counts.py, and the stage-3 model states over 8 and 32 devices.
func TestEstimateSeedModels(t *testing.T) {
	data, err := os.ReadFile("testdata/param_counts.json")
	require.NoError(t, err)
	var golden struct {
		Rank   int `json:"lora_rank"`
		Models map[string]struct {
			Parameters int64 `json:"parameters"`
			LoRA       int64 `json:"lora_all_linear_trainable"`
		} `json:"models"`
	}
	require.NoError(t, json.Unmarshal(data, &golden))
	for _, file := range []string{"mixtral_8x22b_config.json", "starcoder2_15b_config.json", "mistral7b_config.json"} {
		t.Run(file, func(t *testing.T) {
			want, ok := golden.Models[file]
			require.True(t, ok)
			cfg, err := model.LoadConfig("testdata/" + file)
			require.NoError(t, err)
			for _, devices := range []int{8, 32} {
				mem, counts, err := zero.Estimate(cfg, zero.EstimateOptions{Stage: zero.Stage3, Devices: devices})
				require.NoError(t, err)
				assert.Equal(t, want.Parameters, counts.Total)
				// bf16 weights: the bf16 copy, a float32 gradient, float32 master and AdamW moments.
				assert.InEpsilon(t, 18*float64(want.Parameters)/float64(devices), float64(mem.ModelStates()), 1e-6)
				t.Logf("%s: %d parameters, ZeRO-3 model states on %d devices: %.1f GiB each", file, counts.Total, devices, float64(mem.ModelStates())/(1<<30))
			}
			_, counts, err := zero.Estimate(cfg, zero.EstimateOptions{Stage: zero.Stage0, Devices: 1, LoRA: &zero.LoRA{Rank: golden.Rank}})
			require.NoError(t, err)
			assert.Equal(t, want.LoRA, counts.Trainable, "PEFT all-linear adapter size")
		})
	}
}

func TestEstimateBadInput(t *testing.T) {
	cfg, err := model.LoadConfig("testdata/mistral7b_config.json")
	require.NoError(t, err)
	_, _, err = zero.Estimate(cfg, zero.EstimateOptions{Stage: 4, Devices: 8})
	assert.ErrorContains(t, err, "stage 4")
	_, _, err = zero.Estimate(cfg, zero.EstimateOptions{Stage: 3, Devices: 0})
	assert.ErrorContains(t, err, "device count")
	_, _, err = zero.Estimate(cfg, zero.EstimateOptions{Stage: 0, Devices: 1, LoRA: &zero.LoRA{}})
	assert.ErrorContains(t, err, "rank")
}
