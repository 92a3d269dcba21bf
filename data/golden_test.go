package data

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

type trlGoldens struct {
	Tokenizers []struct {
		Tokenizer string `json:"tokenizer"`
		Cases     []struct {
			Name     string            `json:"name"`
			Kind     string            `json:"kind"`
			Rows     []json.RawMessage `json:"rows"`
			Template *string           `json:"template"`
			Config   struct {
				MaxLength          *int    `json:"max_length"`
				TruncationMode     string  `json:"truncation_mode"`
				AssistantOnlyLoss  bool    `json:"assistant_only_loss"`
				CompletionOnlyLoss *bool   `json:"completion_only_loss"`
				PackingStrategy    *string `json:"packing_strategy"`
			} `json:"config"`
			Samples []struct {
				InputIDs    []int32 `json:"input_ids"`
				Labels      []int32 `json:"labels"`
				SeqLengths  []int   `json:"seq_lengths"`
				PromptIDs   []int32 `json:"prompt_ids"`
				ChosenIDs   []int32 `json:"chosen_ids"`
				RejectedIDs []int32 `json:"rejected_ids"`
			} `json:"samples"`
			Collate *struct {
				PaddingFree    bool   `json:"padding_free"`
				Multiple       int    `json:"multiple"`
				MaxLength      *int   `json:"max_length"`
				TruncationMode string `json:"truncation_mode"`
			} `json:"collate"`
			Batch *struct {
				PadID          int32     `json:"pad_id"`
				InputIDs       [][]int32 `json:"input_ids"`
				Labels         [][]int32 `json:"labels"`
				AttentionMask  [][]int32 `json:"attention_mask"`
				PositionIDs    [][]int32 `json:"position_ids"`
				CompletionMask [][]int32 `json:"completion_mask"`
			} `json:"batch"`
		} `json:"cases"`
	} `json:"tokenizers"`
}

// TestMatchesTRL replays TRL 1.16's own preparation (SFTTrainer._prepare_dataset,
// pack_dataset, DataCollatorForLanguageModeling, DPOTrainer._prepare_dataset,
// DataCollatorForPreference; tools/oracle/data_goldens.py) with the same rows and
// tokenizers and requires identical ids, labels, masks and packed batches.
func TestMatchesTRL(t *testing.T) {
	var g trlGoldens
	require.NoError(t, json.Unmarshal(readGz(t, filepath.Join("testdata", "trl_goldens.json.gz")), &g))
	require.Len(t, g.Tokenizers, 2)
	cases := 0
	for _, tg := range g.Tokenizers {
		tok := loadTokenizer(t, tg.Tokenizer)
		for _, c := range tg.Cases {
			cases++
			t.Run(tg.Tokenizer+"/"+c.Kind+"/"+c.Name, func(t *testing.T) {
				cfg := TokenizeConfig{Tokenizer: tok, AssistantOnlyLoss: c.Config.AssistantOnlyLoss,
					CompletionOnlyLoss: c.Config.CompletionOnlyLoss, Truncation: Truncation(c.Config.TruncationMode), NumProc: 3}
				if c.Template != nil {
					tmpl, err := tok.WithChatTemplate(*c.Template)
					require.NoError(t, err)
					cfg.Template = tmpl
				}
				packing := c.Config.PackingStrategy != nil
				if c.Config.MaxLength != nil && !packing {
					cfg.MaxLength = *c.Config.MaxLength
				}
				ds := datasetOf(t, c.Rows)
				if c.Kind == "dpo" {
					checkDPOGolden(t, ds, cfg, c.Samples, c.Collate, c.Batch)
					return
				}
				samples, st, err := Tokenize(context.Background(), ds, cfg)
				require.NoError(t, err)
				require.Equal(t, len(c.Rows), st.Rows)
				if packing {
					samples, _, err = Pack(samples, PackConfig{SeqLength: *c.Config.MaxLength, Strategy: PackStrategy(*c.Config.PackingStrategy)})
					require.NoError(t, err)
				}
				require.Len(t, samples, len(c.Samples))
				for i, want := range c.Samples {
					require.Equal(t, want.InputIDs, samples[i].InputIDs, "sample %d ids", i)
					require.Equal(t, want.Labels, samples[i].Labels, "sample %d labels", i)
					if want.SeqLengths != nil {
						require.Equal(t, want.SeqLengths, samples[i].SeqLengths, "sample %d seq_lengths", i)
					}
				}
				if c.Batch == nil {
					return
				}
				b, err := Collate(samples, CollateConfig{PadID: c.Batch.PadID, PaddingFree: c.Collate.PaddingFree, PadToMultipleOf: c.Collate.Multiple})
				require.NoError(t, err)
				require.Equal(t, c.Batch.InputIDs, b.InputIDs)
				require.Equal(t, c.Batch.Labels, b.Labels)
				if c.Batch.AttentionMask != nil {
					require.Equal(t, c.Batch.AttentionMask, b.AttentionMask)
				}
				if c.Batch.PositionIDs != nil {
					require.Equal(t, c.Batch.PositionIDs, b.PositionIDs)
				}
			})
		}
	}
	require.Equal(t, 32, cases)
}

func checkDPOGolden(t *testing.T, ds *Dataset, cfg TokenizeConfig, want []struct {
	InputIDs    []int32 `json:"input_ids"`
	Labels      []int32 `json:"labels"`
	SeqLengths  []int   `json:"seq_lengths"`
	PromptIDs   []int32 `json:"prompt_ids"`
	ChosenIDs   []int32 `json:"chosen_ids"`
	RejectedIDs []int32 `json:"rejected_ids"`
}, collate *struct {
	PaddingFree    bool   `json:"padding_free"`
	Multiple       int    `json:"multiple"`
	MaxLength      *int   `json:"max_length"`
	TruncationMode string `json:"truncation_mode"`
}, batch *struct {
	PadID          int32     `json:"pad_id"`
	InputIDs       [][]int32 `json:"input_ids"`
	Labels         [][]int32 `json:"labels"`
	AttentionMask  [][]int32 `json:"attention_mask"`
	PositionIDs    [][]int32 `json:"position_ids"`
	CompletionMask [][]int32 `json:"completion_mask"`
}) {
	pairs, st, err := TokenizePreference(context.Background(), ds, cfg)
	require.NoError(t, err)
	require.Len(t, pairs, len(want))
	require.Equal(t, ds.Len()-len(want), st.NoTrainable, "dropped pairs are counted")
	for i, w := range want {
		require.Equal(t, w.PromptIDs, pairs[i].PromptIDs, fmt.Sprintf("pair %d prompt", i))
		require.Equal(t, w.ChosenIDs, pairs[i].ChosenIDs, fmt.Sprintf("pair %d chosen", i))
		require.Equal(t, w.RejectedIDs, pairs[i].RejectedIDs, fmt.Sprintf("pair %d rejected", i))
	}
	cc := CollateConfig{PadID: batch.PadID, Truncation: Truncation(collate.TruncationMode)}
	if collate.MaxLength != nil {
		cc.MaxLength = *collate.MaxLength
	}
	b, err := CollatePreference(pairs, cc)
	require.NoError(t, err)
	require.Equal(t, batch.InputIDs, b.InputIDs)
	require.Equal(t, batch.AttentionMask, b.AttentionMask)
	require.Equal(t, batch.CompletionMask, b.CompletionMask)
}
