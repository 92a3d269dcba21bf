package memory

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/internal/testenv"
	"handbook/lora"
	"handbook/model"
	"handbook/zero"
)

func TestMain(m *testing.M) {
	// XLA reads XLA_FLAGS once, at the process's first compilation.
	if err := UseGPUShapedXLAFlags(); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// TestEstimateAgainstXLA is the small-model version of docs/PERFORMANCE.md's table: a
// Mistral-shaped model (hidden 512, GQA 8/2 heads, 4 layers, vocab 8000) trained as the seed's
// configurations are — LoRA r 16 all-linear and QLoRA on a bf16 base with checkpointing, full
// fine-tuning under ZeRO-3 on 4 devices, full DPO — compiled from shapes on the XLA CPU plugin.
// The estimate's model states must be XLA's: the weights and batch are the micro-batch graph's
// arguments, the float32 gradients its outputs. Its total must be within 35% of XLA's peak on one
// device (the activation terms are calibrated on Mistral-7B's shapes, where the LoRA
// configuration agrees within 1%; at this size the estimate is high by up to 33%). The sharded
// and the quantized steps agree at 7B within 6% and 2% (see docs/PERFORMANCE.md), but at this size
// the estimate is 61% and 42% high. Both are checked here on model states only (their per-layer
// growth: TestShardedStepRecomputesPerLayer, TestQLoRARecomputesDequantizedWeights).
func TestEstimateAgainstXLA(t *testing.T) {
	cfg, err := model.LoadConfig("testdata/small_mistral.json")
	require.NoError(t, err)
	adapter := &lora.Config{R: 16, Alpha: 32, TargetModules: []string{"all-linear"}}
	base := Config{Model: cfg, Task: SFT, Weights: dtypes.BFloat16, Autocast: true, Devices: 1, Batch: 2, Seq: 512, GradientCheckpointing: true}
	cases := []struct {
		name        string
		edit        func(c *Config)
		checksTotal bool
	}{
		{"lora", func(c *Config) { c.LoRA = adapter }, true},
		{"full", func(c *Config) {}, true},
		{"qlora", func(c *Config) {
			c.LoRA, c.QLoRA = adapter, &lora.QuantizeOptions{DoubleQuant: true, ComputeDType: dtypes.BFloat16}
		}, false},
		{"zero3", func(c *Config) { c.Stage, c.Devices = zero.Stage3, 4 }, false},
		{"dpo", func(c *Config) { c.Task, c.Batch = DPO, 1 }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			est, _, err := Estimate(c)
			require.NoError(t, err)
			got, err := Measure(testenv.XLACPUBackend(t, max(c.Devices, 1)), c)
			require.NoError(t, err)
			micro := got.Step.Graphs[0]
			rows := c.Batch * max(c.Devices, 1)
			if c.Task == DPO {
				rows *= 2
			}
			batchBytes := int64(3*rows*c.Seq*4) / int64(max(c.Devices, 1))
			if c.Task == DPO {
				batchBytes += int64(2 * c.Batch * 4)
			}
			assert.InEpsilon(t, est.Parameters, micro.Arguments-batchBytes, 0.01, "weights: estimate vs XLA's arguments")
			assert.InEpsilon(t, est.Gradients, micro.Outputs, 0.01, "float32 gradients: estimate vs XLA's outputs")
			assert.InEpsilon(t, est.Optimizer, got.Step.Masters+got.Step.OptimizerState, 0.01)
			ratio := float64(est.Total()) / float64(got.Peak)
			t.Logf("%s: estimate %.1f MiB, XLA peak %.1f MiB (%.2f×)", tc.name, float64(est.Total())/(1<<20), float64(got.Peak)/(1<<20), ratio)
			if tc.checksTotal {
				assert.InDelta(t, 1, ratio, 0.35)
			}
		})
	}
}

// TestQLoRARecomputesDequantizedWeights: with gradient checkpointing, each layer's NF4 weights
// are dequantized again in its backward pass, so XLA's temporaries do not grow by a layer's
// dequantized weights per layer (they did, by about their float32 size, when the integer codes'
// tie to the layer input was folded away: Mistral-7B QLoRA needed 33.5 GiB instead of 7.8).
func TestQLoRARecomputesDequantizedWeights(t *testing.T) {
	cfg, err := model.LoadConfig("testdata/small_mistral.json")
	require.NoError(t, err)
	var layerWeights int64 // one layer's quantized linear weights, in values
	for _, s := range cfg.ParamSpecs() {
		if strings.HasPrefix(s.Name, "model.layers.0.") && strings.HasSuffix(s.Name, "_proj.weight") {
			layerWeights += int64(s.Dims[0] * s.Dims[1])
		}
	}
	b := testenv.XLACPUBackend(t, 1)
	temporaries := func(layers int) int64 {
		c := *cfg
		c.NumHiddenLayers = layers
		got, err := Measure(b, Config{Model: &c, Task: SFT, Weights: dtypes.BFloat16, Autocast: true, Devices: 1,
			Batch: 2, Seq: 512, GradientCheckpointing: true,
			LoRA:  &lora.Config{R: 16, Alpha: 32, TargetModules: []string{"all-linear"}},
			QLoRA: &lora.QuantizeOptions{DoubleQuant: true, ComputeDType: dtypes.BFloat16}})
		require.NoError(t, err)
		return got.Step.Graphs[0].Temporary
	}
	perLayer := (temporaries(4) - temporaries(2)) / 2
	t.Logf("temporaries per layer: %d bytes; a layer's weights in float32: %d bytes", perLayer, 4*layerWeights)
	assert.Less(t, perLayer, layerWeights, "a layer's dequantized weights are kept to the backward pass")
}

// TestBF16LowersStepMemory compiles the bench model's training step (train/testdata's bf16 golden
// model, batch 8 × 256, one device) GPU-shaped, as docs/PERFORMANCE.md's bf16 table does: with bf16
// autocast, over float32 or bf16 weights (float32 masters), XLA's peak is below float32's.
func TestBF16LowersStepMemory(t *testing.T) {
	data, err := os.ReadFile("../train/testdata/bf16_autocast.json")
	require.NoError(t, err)
	var golden struct {
		Config json.RawMessage `json:"config"`
	}
	require.NoError(t, json.Unmarshal(data, &golden))
	cfg, err := model.ParseConfig(golden.Config)
	require.NoError(t, err)
	b := testenv.XLACPUBackend(t, 1)
	peak := func(weights dtypes.DType, autocast bool) int64 {
		got, err := Measure(b, Config{Model: cfg, Task: SFT, Weights: weights, Autocast: autocast, Devices: 1, Batch: 8, Seq: 256})
		require.NoError(t, err)
		t.Logf("weights %s, autocast %v: XLA peak %.1f MiB", weights, autocast, float64(got.Peak)/(1<<20))
		return got.Peak
	}
	float32Peak := peak(dtypes.Float32, false)
	assert.Less(t, peak(dtypes.Float32, true), float32Peak, "bf16 autocast over float32 weights")
	assert.Less(t, peak(dtypes.BFloat16, true), float32Peak, "bf16 weights with float32 masters")
}

// TestShardedStepRecomputesPerLayer: ZeRO-3 over 4 devices with gradient checkpointing, XLA's
// temporaries do not grow by a layer's activations and weights per layer. They did (by ~29 MiB
// per layer here, 0.91 GiB at Mistral-7B's shapes) while the CPU compiler's all-reduce combiner
// merged the checkpoint ties' scalar all-reduces with other layers' gradient all-reduces and so
// deferred every weight-gradient product to the end of the backward pass (UseGPUShapedXLAFlags
// turns that pass off).
func TestShardedStepRecomputesPerLayer(t *testing.T) {
	cfg, err := model.LoadConfig("testdata/small_mistral.json")
	require.NoError(t, err)
	var layerWeights int64 // one layer's weights, in values
	for _, s := range cfg.ParamSpecs() {
		if strings.HasPrefix(s.Name, "model.layers.0.") {
			n := int64(1)
			for _, d := range s.Dims {
				n *= int64(d)
			}
			layerWeights += n
		}
	}
	b := testenv.XLACPUBackend(t, 4)
	temporaries := func(layers int) int64 {
		c := *cfg
		c.NumHiddenLayers = layers
		got, err := Measure(b, Config{Model: &c, Task: SFT, Weights: dtypes.BFloat16, Autocast: true, Devices: 4,
			Stage: zero.Stage3, Batch: 2, Seq: 512, GradientCheckpointing: true})
		require.NoError(t, err)
		return got.Step.Graphs[0].Temporary
	}
	perLayer := (temporaries(4) - temporaries(2)) / 2
	t.Logf("temporaries per layer: %d bytes; a layer's 16-bit weights: %d bytes", perLayer, 2*layerWeights)
	assert.Less(t, perLayer, 2*layerWeights, "a layer's activations or full-size weights are kept to the end of the backward pass")
}
