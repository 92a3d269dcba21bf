package data

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/model"
)

func sampleOf(ids ...int32) Sample {
	return Sample{InputIDs: ids, Labels: append([]int32(nil), ids...)}
}

// TestPackDocExample is TRL's pack_dataset docstring example.
func TestPackDocExample(t *testing.T) {
	in := []Sample{sampleOf(1, 2, 3, 4, 5), sampleOf(6, 7), sampleOf(8, 9, 10), sampleOf(11)}
	tests := []struct {
		strategy PackStrategy
		ids      [][]int32
		lens     [][]int
	}{
		{PackBFD, [][]int32{{1, 2, 3, 4}, {8, 9, 10, 11}, {6, 7}}, [][]int{{4}, {3, 1}, {2}}},
		{PackBFDSplit, [][]int32{{1, 2, 3, 4}, {8, 9, 10, 5}, {6, 7, 11}}, [][]int{{4}, {3, 1}, {2, 1}}},
		{PackWrapped, [][]int32{{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 11}}, [][]int{nil, nil, nil}},
	}
	for _, tc := range tests {
		t.Run(string(tc.strategy), func(t *testing.T) {
			out, st, err := Pack(in, PackConfig{SeqLength: 4, Strategy: tc.strategy})
			require.NoError(t, err)
			require.Len(t, out, len(tc.ids))
			for i := range out {
				assert.Equal(t, tc.ids[i], out[i].InputIDs)
				assert.Equal(t, tc.lens[i], out[i].SeqLengths)
			}
			if tc.strategy == PackBFD {
				assert.Equal(t, 1, st.TruncatedTokens, "the overflow is counted")
			}
		})
	}
	_, _, err := Pack(in, PackConfig{SeqLength: 4, Strategy: "greedy"})
	require.ErrorContains(t, err, `unknown strategy "greedy"`)
}

func TestCollatePackedRows(t *testing.T) {
	packed, _, err := Pack([]Sample{sampleOf(1, 2, 3), sampleOf(4, 5), sampleOf(6, 7, 8, 9)}, PackConfig{SeqLength: 5})
	require.NoError(t, err)
	b, err := Collate(packed, CollateConfig{PadID: 0, PadToMultipleOf: 8})
	require.NoError(t, err)
	assert.Equal(t, [][]int32{{6, 7, 8, 9, 0, 0, 0, 0}, {1, 2, 3, 4, 5, 0, 0, 0}}, b.InputIDs, "longest first, best fit")
	assert.Equal(t, [][]int32{{0, 1, 2, 3, 0, 0, 0, 0}, {0, 1, 2, 0, 1, 0, 0, 0}}, b.PositionIDs)
	assert.Equal(t, [][]int32{{0, 0, 0, 0, 1, 1, 1, 1}, {0, 0, 0, 1, 1, 2, 2, 2}}, b.SegmentIDs)
	assert.Equal(t, [][]int32{{1, 1, 1, 1, 0, 0, 0, 0}, {1, 1, 1, 1, 1, 0, 0, 0}}, b.AttentionMask)

	free, err := Collate(packed, CollateConfig{PaddingFree: true})
	require.NoError(t, err)
	assert.Equal(t, [][]int32{{6, 7, 8, 9, 1, 2, 3, 4, 5}}, free.InputIDs)
	assert.Equal(t, [][]int32{{0, 1, 2, 3, 0, 1, 2, 0, 1}}, free.PositionIDs)
	assert.Equal(t, [][]int32{{0, 0, 0, 0, 1, 1, 1, 2, 2}}, free.SegmentIDs)
	assert.Equal(t, [][]int32{{-100, 7, 8, 9, -100, 2, 3, -100, 5}}, free.Labels, "no label across a boundary")
}

// TestPackedLogitsEqualAlone runs a padding-free packed batch through the model:
// each sample's logits equal the sample run alone.
func TestPackedLogitsEqualAlone(t *testing.T) {
	b, _, err := backend.New()
	require.NoError(t, err)
	t.Cleanup(b.Finalize)
	m, err := model.Load(b, filepath.Join("..", "testdata", "models", "llama_gqa"), model.LoadOptions{})
	require.NoError(t, err)
	defer m.Finalize()
	samples := []Sample{sampleOf(5, 17, 99, 3, 42, 7, 8), sampleOf(11, 12, 13), sampleOf(100, 101, 102, 103, 104)}
	packed, _, err := Pack(samples, PackConfig{SeqLength: 16})
	require.NoError(t, err)
	batch, err := Collate(packed, CollateConfig{PaddingFree: true, PadToMultipleOf: 16})
	require.NoError(t, err)
	require.Len(t, batch.InputIDs, 1)
	logits, err := m.Logits(model.Inputs{IDs: batch.InputIDs, PositionIDs: batch.PositionIDs, AttentionMask: batch.AttentionMask, SegmentIDs: batch.SegmentIDs})
	require.NoError(t, err)
	flat, err := tensors.CopyFlatData[float32](logits)
	require.NoError(t, err)
	vocab := m.Config.VocabSize
	start := 0
	for _, r := range packed {
		for _, n := range r.SeqLengths {
			alone, err := m.Logits(model.Inputs{IDs: [][]int32{batch.InputIDs[0][start : start+n]}})
			require.NoError(t, err)
			aloneFlat, err := tensors.CopyFlatData[float32](alone)
			require.NoError(t, err)
			worst := 0.0
			for i := range aloneFlat {
				worst = math.Max(worst, math.Abs(float64(aloneFlat[i]-flat[start*vocab+i])))
			}
			assert.Less(t, worst, 1e-4, "segment at %d (%d tokens)", start, n)
			start += n
		}
	}
	assert.Equal(t, 15, start)
}

func TestSamplerResumes(t *testing.T) {
	s := Sampler{N: 10, BatchSize: 3, Seed: 1, Shuffle: true}
	require.Equal(t, 4, s.Steps())
	seen := map[int]int{}
	for step := 0; step < s.Steps(); step++ {
		idx, err := s.Batch(2, step)
		require.NoError(t, err)
		for _, i := range idx {
			seen[i]++
		}
	}
	assert.Len(t, seen, 10, "an epoch covers every example once")
	a, _ := s.Batch(2, 1)
	fresh := Sampler{N: 10, BatchSize: 3, Seed: 1, Shuffle: true} // a resumed run
	b, _ := fresh.Batch(2, 1)
	assert.Equal(t, a, b, "resuming at (epoch, step) yields the same batch")
	assert.NotEqual(t, s.Order(0), s.Order(1), "epochs differ")
	_, err := s.Batch(0, 4)
	require.Error(t, err)
	assert.Equal(t, 3, Sampler{N: 10, BatchSize: 3, DropLast: true}.Steps())
}

// TestSamplerEvenBatches: with EvenBatches the final partial batch is completed with the epoch's
// first examples (accelerate's even_batches), so every batch has BatchSize examples.
func TestSamplerEvenBatches(t *testing.T) {
	s := Sampler{N: 10, BatchSize: 4, Seed: 2, Shuffle: true, EvenBatches: true}
	require.Equal(t, 3, s.Steps())
	order := s.Order(1)
	last, err := s.Batch(1, 2)
	require.NoError(t, err)
	assert.Equal(t, []int{order[8], order[9], order[0], order[1]}, last)
	first, err := s.Batch(1, 0)
	require.NoError(t, err)
	assert.Equal(t, order[:4], first, "full batches are unchanged")
	s.EvenBatches = false
	last, err = s.Batch(1, 2)
	require.NoError(t, err)
	assert.Equal(t, order[8:], last)
}
