package train

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/model"
)

// benchConfig is the bench model of docs/PERFORMANCE.md, the same as tools/bench/torch_ref.py.
const benchConfig = `{"model_type":"llama","vocab_size":4096,"hidden_size":256,"intermediate_size":688,
"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":4,"max_position_embeddings":512,
"tie_word_embeddings":false,"rms_norm_eps":1e-6,"rope_theta":10000}`

const benchBatch, benchSeq = 8, 256

// BenchmarkTrainStep times forward + backward + AdamW of the bench model, batch 8 × 256 tokens.
// Tokens/s = 2048 / (ns/op · 1e-9).
func BenchmarkTrainStep(b *testing.B) {
	be, sel, err := backend.New()
	require.NoError(b, err)
	b.Log(sel)
	cfg, err := model.ParseConfig([]byte(benchConfig))
	require.NoError(b, err)
	w, err := model.RandomWeights(cfg, dtypes.Float32, 1)
	require.NoError(b, err)
	m, err := model.New(be, cfg, w)
	require.NoError(b, err)
	step, err := NewStep(m, DefaultAdamW(), 1e-4)
	require.NoError(b, err)
	defer step.Finalize()
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]int32, benchBatch*benchSeq)
	for i := range ids {
		ids[i] = int32(rng.IntN(cfg.VocabSize))
	}
	batch := tensors.FromFlatDataAndDimensions(ids, benchBatch, benchSeq)
	_, err = step.Run(batch, batch) // compile + warm up
	require.NoError(b, err)
	b.ResetTimer()
	for range b.N {
		_, err = step.Run(batch, batch)
		require.NoError(b, err)
	}
	b.ReportMetric(float64(benchBatch*benchSeq*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
