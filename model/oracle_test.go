package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
)

// fixtureDir holds the tiny transformers models written by tools/oracle/make_models.py.
const fixtureDir = "../testdata/models"

var fixtureNames = []string{"llama_gqa", "llama_tied", "mistral_sw", "qwen2_bias", "qwen3_qknorm", "gemma",
	"starcoder2_bias", "mixtral_moe", "smollm3_nope"}

type reference struct {
	InputIDs [][]int32     `json:"input_ids"`
	Logits   [][][]float32 `json:"logits"`
	Loss     float64       `json:"loss"`
	Padded   struct {
		InputIDs      [][]int32     `json:"input_ids"`
		AttentionMask [][]int32     `json:"attention_mask"`
		PositionIDs   [][]int32     `json:"position_ids"`
		Logits        [][][]float32 `json:"logits"`
	} `json:"padded"`
	Packed struct {
		InputIDs    [][]int32     `json:"input_ids"`
		PositionIDs [][]int32     `json:"position_ids"`
		SegmentIDs  [][]int32     `json:"segment_ids"`
		Lengths     []int         `json:"lengths"`
		Logits      [][][]float32 `json:"logits"`
	} `json:"packed"`
	Greedy struct {
		PromptIDs []int32 `json:"prompt_ids"`
		NewIDs    []int32 `json:"new_ids"`
	} `json:"greedy"`
	GreedyBatch struct {
		PromptIDs     [][]int32 `json:"prompt_ids"`
		AttentionMask [][]int32 `json:"attention_mask"`
		NewIDs        [][]int32 `json:"new_ids"`
	} `json:"greedy_batch"`
	GradLoss float64 `json:"grad_loss"`
}

func loadReference(t *testing.T, name string) reference {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtureDir, name, "reference.json"))
	require.NoError(t, err)
	var r reference
	require.NoError(t, json.Unmarshal(data, &r))
	return r
}

func testBackend(t testing.TB) compute.Backend {
	t.Helper()
	b, _, err := backend.New()
	require.NoError(t, err)
	t.Cleanup(b.Finalize)
	return b
}

// assertLogitsClose checks |Δ| ≤ 1e-4·max|want| on the positions where keep(b, s) holds.
func assertLogitsClose(t *testing.T, want [][][]float32, got *tensors.Tensor, keep func(b, s int) bool) {
	t.Helper()
	flat, err := tensors.CopyFlatData[float32](got)
	require.NoError(t, err)
	dims := got.Shape().Dimensions
	require.Equal(t, []int{len(want), len(want[0])}, dims[:2])
	var maxAbs, maxDiff float64
	for b := range want {
		for s := range want[b] {
			if keep != nil && !keep(b, s) {
				continue
			}
			require.Len(t, want[b][s], dims[2], "reference logits row (%d,%d)", b, s)
			for v, w := range want[b][s] {
				maxAbs = math.Max(maxAbs, math.Abs(float64(w)))
				g := flat[(b*dims[1]+s)*dims[2]+v]
				maxDiff = math.Max(maxDiff, math.Abs(float64(g-w)))
			}
		}
	}
	assert.LessOrEqual(t, maxDiff, 1e-4*maxAbs, "max |Δlogit| %g vs max|logit| %g", maxDiff, maxAbs)
}

func TestLogitsMatchTransformers(t *testing.T) {
	b := testBackend(t)
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			m, err := Load(b, filepath.Join(fixtureDir, name), LoadOptions{})
			require.NoError(t, err)
			defer m.Finalize()
			ref := loadReference(t, name)

			logits, err := m.Logits(Inputs{IDs: ref.InputIDs})
			require.NoError(t, err)
			assertLogitsClose(t, ref.Logits, logits, nil)

			loss, _, err := m.Loss(Inputs{IDs: ref.InputIDs})
			require.NoError(t, err)
			assert.InDelta(t, ref.Loss, loss, 1e-5)

			p := ref.Padded
			logits, err = m.Logits(Inputs{IDs: p.InputIDs, AttentionMask: p.AttentionMask, PositionIDs: p.PositionIDs})
			require.NoError(t, err)
			assertLogitsClose(t, p.Logits, logits, func(b, s int) bool { return p.AttentionMask[b][s] == 1 })
		})
	}
}

// TestPackedSamplesAreIsolated runs two samples packed in one row (positions restart, segment
// ids differ) and checks each against transformers' logits and against the sample run alone.
func TestPackedSamplesAreIsolated(t *testing.T) {
	b := testBackend(t)
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			m, err := Load(b, filepath.Join(fixtureDir, name), LoadOptions{})
			require.NoError(t, err)
			defer m.Finalize()
			p := loadReference(t, name).Packed
			require.NotEmpty(t, p.Lengths)
			packed, err := m.Logits(Inputs{IDs: p.InputIDs, PositionIDs: p.PositionIDs, SegmentIDs: p.SegmentIDs})
			require.NoError(t, err)
			assertLogitsClose(t, p.Logits, packed, nil)

			packedFlat, err := tensors.CopyFlatData[float32](packed)
			require.NoError(t, err)
			vocab := m.Config.VocabSize
			start := 0
			for _, n := range p.Lengths {
				alone, err := m.Logits(Inputs{IDs: [][]int32{p.InputIDs[0][start : start+n]}})
				require.NoError(t, err)
				aloneFlat, err := tensors.CopyFlatData[float32](alone)
				require.NoError(t, err)
				want := packedFlat[start*vocab : (start+n)*vocab]
				assert.InDeltaSlice(t, want, aloneFlat, 1e-4, "sample at %d of length %d", start, n)
				start += n
			}
		})
	}
}
