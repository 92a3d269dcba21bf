package train

import (
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/internal/testenv"
	"handbook/model"
)

// weightShapes are a config's weights as shapes in dtype.
func weightShapes(cfg *model.Config, dtype dtypes.DType) map[string]shapes.Shape {
	out := map[string]shapes.Shape{}
	for _, s := range cfg.ParamSpecs() {
		out[s.Name] = shapes.Make(dtype, s.Dims...)
	}
	return out
}

// TestCompileStepMemoryAccounting compiles the bench model's training step (batch 8 × 256, the
// benchmark's shape) from shapes on the XLA CPU plugin, in float32 and with bf16 autocast, and
// checks the accounting: the micro-batch graph's arguments are the weights plus the batch, its
// outputs the float32 gradients, nothing is aliased, and the update runs one group at a time (its
// outputs are a decoder layer's or a single weight's states, not the model's). Compiled for XLA's
// CPU as it would run there, bf16 does not lower the peak (the CPU compiler evaluates bf16
// arithmetic on float32 copies); memory.TestBF16LowersStepMemory compiles it GPU-shaped.
func TestCompileStepMemoryAccounting(t *testing.T) {
	_, cfg := loadBF16Golden(t)
	b := testenv.XLACPUBackend(t, 1)
	batch := map[string]shapes.Shape{"input_ids": shapes.Make(dtypes.Int32, 8, 256), "labels": shapes.Make(dtypes.Int32, 8, 256)}
	for _, autocast := range []dtypes.DType{dtypes.InvalidDType, dtypes.BFloat16} {
		m, err := CompileStepMemory(b, MemoryPlan{Decoder: &model.Decoder{Config: cfg, Autocast: autocast}, Objective: CausalLM{},
			Weights: weightShapes(cfg, dtypes.Float32), Batch: batch, MaxGradNorm: 1})
		require.NoError(t, err)
		micro := m.Graphs[0]
		assert.Equal(t, m.Weights+2*8*256*4, micro.Arguments, "weights + batch")
		assert.InDelta(t, m.Gradients, micro.Outputs, 1024, "float32 gradients (+ the loss vector)")
		for _, g := range m.Graphs {
			assert.Zero(t, g.Aliased, g.Name)
			if g.Name != "micro-batch" && g.Name != "gradient norm" {
				assert.Less(t, g.Outputs, m.ModelStates()/4, "%s updates one group", g.Name)
			}
		}
		t.Logf("autocast %s: model states %.1f MB, peak %.1f MB (micro-batch temporaries %.1f MB)", autocast,
			float64(m.ModelStates())/1e6, float64(m.Peak)/1e6, float64(micro.Temporary)/1e6)
	}
}
