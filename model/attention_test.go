package model

import (
	"bytes"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAttentionImplementationsAgree: sdpa (the backend's fused kernel; on the Go backend a fused
// forward differentiated through the eager graph) gives eager's loss and gradients on a GQA model
// (4 query heads over 2 KV heads) with a right-padded row, with and without the hand-written
// gradients; packed rows fall back to eager with one log line.
func TestAttentionImplementationsAgree(t *testing.T) {
	b := testBackend(t)
	if !b.Capabilities().Operations[compute.OpTypeFusedScaledDotProductAttention] {
		t.Skipf("backend %s has no fused attention to compare", b.Name())
	}
	m, err := Load(b, filepath.Join(fixtureDir, "llama_gqa"), LoadOptions{})
	require.NoError(t, err)
	require.Greater(t, m.Config.NumAttentionHeads, m.Config.NumKeyValueHeads, "the fixture must use grouped-query attention")
	ids := [][]int32{{5, 9, 2, 33, 17, 8, 4, 61, 12, 3, 7, 29}, {44, 1, 19, 6, 2, 50, 11, 0, 0, 0, 0, 0}}
	mask := [][]int32{{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0}}
	var logs bytes.Buffer
	m.Decoder.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	for _, fast := range []bool{false, true} {
		for _, in := range []Inputs{{IDs: ids}, {IDs: ids, AttentionMask: mask}} {
			m.Decoder.Attention = AttentionEager
			wantLoss, wantGrads := lossAndGrads(t, m, in, fast)
			m.Decoder.Attention = AttentionSDPA
			gotLoss, gotGrads := lossAndGrads(t, m, in, fast)
			assert.InDelta(t, wantLoss, gotLoss, 1e-5, "fast=%v padded=%v", fast, in.AttentionMask != nil)
			for i, name := range m.Weights.Names() {
				var maxRef, maxDiff float64
				for j := range wantGrads[i] {
					maxRef = math.Max(maxRef, math.Abs(float64(wantGrads[i][j])))
					maxDiff = math.Max(maxDiff, math.Abs(float64(wantGrads[i][j]-gotGrads[i][j])))
				}
				assert.LessOrEqual(t, maxDiff, 1e-4*maxRef+1e-7, "fast=%v %s", fast, name)
			}
		}
	}
	assert.Empty(t, logs.String(), "the Go backend's fused kernel takes causal and padding masks")

	packed := Inputs{IDs: ids, SegmentIDs: [][]int32{{0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2}, {0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1}}}
	m.Decoder.Attention = AttentionEager
	wantLoss, _ := lossAndGrads(t, m, packed, false)
	m.Decoder.Attention = AttentionFlashAttention
	gotLoss, _ := lossAndGrads(t, m, packed, false)
	assert.Equal(t, wantLoss, gotLoss, "packed rows run the eager graph")
	assert.Equal(t, 1, strings.Count(logs.String(), "segment_ids"), "one log line per reason: %s", logs.String())
}

func TestParseAttentionImplementation(t *testing.T) {
	for name, want := range map[string]AttentionImplementation{"": AttentionEager, "eager": AttentionEager,
		"sdpa": AttentionSDPA, "flash_attention_2": AttentionFlashAttention} {
		got, err := ParseAttentionImplementation(name)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := ParseAttentionImplementation("flex_attention")
	assert.ErrorContains(t, err, `"flex_attention" is not supported (supported: eager, sdpa, flash_attention_2)`)
}
