package model

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGreedyMatchesTransformers(t *testing.T) {
	b := testBackend(t)
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			m, err := Load(b, filepath.Join(fixtureDir, name), LoadOptions{})
			require.NoError(t, err)
			defer m.Finalize()
			ref := loadReference(t, name)
			noEOS := []int{}

			got, err := m.Generate(context.Background(), [][]int32{ref.Greedy.PromptIDs},
				GenerateOptions{MaxNewTokens: len(ref.Greedy.NewIDs), EOSTokenIDs: noEOS})
			require.NoError(t, err)
			assert.Equal(t, ref.Greedy.NewIDs, got[0])

			gb := ref.GreedyBatch
			prompts := make([][]int32, len(gb.PromptIDs))
			for r, row := range gb.PromptIDs {
				for s, id := range row {
					if gb.AttentionMask[r][s] == 1 {
						prompts[r] = append(prompts[r], id)
					}
				}
			}
			got, err = m.Generate(context.Background(), prompts,
				GenerateOptions{MaxNewTokens: len(gb.NewIDs[0]), EOSTokenIDs: noEOS})
			require.NoError(t, err)
			assert.Equal(t, gb.NewIDs, got)
		})
	}
}
