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

// TestBF16LowersStepMemory compiles the bench model's training step (batch 8 × 256, the
// benchmark's shape) from shapes on the XLA CPU plugin: with bf16 autocast XLA's peak is below
// float32's. It also checks the accounting: the micro-batch graph's arguments are the weights plus
// the batch, its outputs the float32 gradients, nothing is aliased, and the update runs one group
// at a time (its outputs are a decoder layer's or a single weight's states, not the model's).
func TestBF16LowersStepMemory(t *testing.T) {
	_, cfg := loadBF16Golden(t)
	b := testenv.XLACPUBackend(t, 1)
	batch := map[string]shapes.Shape{"input_ids": shapes.Make(dtypes.Int32, 8, 256), "labels": shapes.Make(dtypes.Int32, 8, 256)}
	peak := map[dtypes.DType]int64{}
	for _, autocast := range []dtypes.DType{dtypes.InvalidDType, dtypes.BFloat16} {
		m, err := CompileStepMemory(b, MemoryPlan{Decoder: &model.Decoder{Config: cfg, Autocast: autocast}, Objective: CausalLM{},
			Weights: weightShapes(cfg, dtypes.Float32), Batch: batch, MaxGradNorm: 1})
		require.NoError(t, err)
		peak[autocast] = m.Peak
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
	assert.Less(t, peak[dtypes.BFloat16], peak[dtypes.InvalidDType])
}
