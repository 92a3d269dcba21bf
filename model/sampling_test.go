package model

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPickToken(t *testing.T) {
	logits := []float32{0.1, 2.0, 1.5, -1, 2.0}
	rng := rand.New(rand.NewPCG(1, 2))
	assert.Equal(t, int32(1), pickToken(logits, GenerateOptions{}, rng), "greedy takes the first maximum, like torch.argmax")
	assert.Equal(t, int32(1), pickToken(logits, GenerateOptions{DoSample: true, TopK: 1}, rng), "top_k=1 is greedy")
	assert.Equal(t, int32(1), pickToken(logits, GenerateOptions{DoSample: true, TopP: 1e-6}, rng), "a tiny top_p keeps one token")

	// Sampling frequencies follow softmax(logits/T) restricted to the top-k tokens.
	const draws = 20000
	for _, tc := range []struct {
		opts GenerateOptions
		keep []int
	}{
		{GenerateOptions{DoSample: true, Temperature: 0.7}, []int{0, 1, 2, 3, 4}},
		{GenerateOptions{DoSample: true, TopK: 3}, []int{1, 4, 2}},
		{GenerateOptions{DoSample: true, TopP: 0.8}, []int{1, 4, 2}},
	} {
		temp := tc.opts.Temperature
		if temp == 0 {
			temp = 1
		}
		want := map[int]float64{}
		var z float64
		for _, i := range tc.keep {
			want[i] = math.Exp(float64(logits[i]) / temp)
			z += want[i]
		}
		counts := map[int]float64{}
		for range draws {
			counts[int(pickToken(logits, tc.opts, rng))]++
		}
		for i := range logits {
			assert.InDelta(t, want[i]/z, counts[i]/draws, 0.015, "token %d with %+v", i, tc.opts)
		}
	}
}

func TestGenerateSamplingIsSeededAndStops(t *testing.T) {
	b := testBackend(t)
	m, err := Load(b, filepath.Join(fixtureDir, "llama_gqa"), LoadOptions{})
	require.NoError(t, err)
	defer m.Finalize()
	prompt := [][]int32{{1, 13, 20, 83}}
	opts := GenerateOptions{MaxNewTokens: 12, DoSample: true, Temperature: 1.5, Seed: 3, EOSTokenIDs: []int{}}
	a, err := m.Generate(context.Background(), prompt, opts)
	require.NoError(t, err)
	again, err := m.Generate(context.Background(), prompt, opts)
	require.NoError(t, err)
	assert.Equal(t, a, again, "same seed, same tokens")
	require.Len(t, a[0], 12)

	// Stop at the first generated token's id as EOS: generation ends right after it.
	stopped, err := m.Generate(context.Background(), prompt, GenerateOptions{MaxNewTokens: 12, DoSample: true, Temperature: 1.5, Seed: 3, EOSTokenIDs: []int{int(a[0][0])}})
	require.NoError(t, err)
	assert.Equal(t, a[0][:1], stopped[0])

	// Stop strings see the decoded new text.
	decode := func(ids []int32) string {
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = strconv.Itoa(int(id))
		}
		return strings.Join(parts, " ") + " "
	}
	stop := strconv.Itoa(int(a[0][2])) + " "
	opts.StopStrings, opts.Decode = []string{stop}, decode
	byString, err := m.Generate(context.Background(), prompt, opts)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(byString[0]), 3)
	assert.Contains(t, decode(byString[0]), stop)

	_, err = m.Generate(context.Background(), prompt, GenerateOptions{StopStrings: []string{"x"}})
	assert.ErrorContains(t, err, "Decode")
	_, err = m.Generate(context.Background(), [][]int32{{1, 9999}}, GenerateOptions{})
	assert.ErrorContains(t, err, "outside the vocabulary")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = m.Generate(ctx, prompt, GenerateOptions{})
	assert.ErrorIs(t, err, context.Canceled)
}
