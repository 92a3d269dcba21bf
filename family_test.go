package handbook

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/backend"
	"handbook/model"
)

// TestFamilyRules: TRL 1.16's router-loss rule per trainer on a Mixtral model, the error on a
// dense one, and the dropout warning for SFT on a model whose config asks for dropout.
func TestFamilyRules(t *testing.T) {
	b, _, err := backend.New()
	require.NoError(t, err)
	defer b.Finalize()
	load := func(name string) *model.Model {
		m, err := model.Load(b, filepath.Join("testdata", "models", name), model.LoadOptions{})
		require.NoError(t, err)
		t.Cleanup(m.Finalize)
		return m
	}
	zero, half := 0.0, 0.5
	for _, tc := range []struct {
		task Task
		coef *float64
		want float64
	}{
		{TaskSFT, nil, 0.02},  // the config's router_aux_loss_coef, although output_router_logits is false
		{TaskDPO, nil, 0.02},  // likewise
		{TaskSFT, &half, 0.5}, // the recipe's router_aux_loss_coef
		{TaskDPO, &zero, 0},   // 0 turns it off
		{TaskORPO, nil, 0},    // ORPOTrainer follows output_router_logits (false)
	} {
		m := load("mixtral_moe")
		r := &Recipe{Path: "r.yaml", Task: tc.task}
		r.Training.RouterAuxLossCoef = tc.coef
		require.NoError(t, familyRules(r, m, slog.New(slog.DiscardHandler)))
		assert.Equal(t, tc.want, m.Decoder.RouterAuxLossCoef, "%s coef %v", tc.task, tc.coef)
	}

	r := &Recipe{Path: "r.yaml", Task: TaskSFT}
	r.Training.RouterAuxLossCoef = &half
	err = familyRules(r, load("llama_gqa"), slog.New(slog.DiscardHandler))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "r.yaml: router_aux_loss_coef is 0.5 but llama is not a mixture-of-experts model")

	var logs bytes.Buffer
	require.NoError(t, familyRules(&Recipe{Path: "r.yaml", Task: TaskSFT}, load("starcoder2_bias"), slog.New(slog.NewTextHandler(&logs, nil))))
	assert.Contains(t, logs.String(), "residual_dropout=0.1")
	logs.Reset()
	require.NoError(t, familyRules(&Recipe{Path: "r.yaml", Task: TaskDPO}, load("starcoder2_bias"), slog.New(slog.NewTextHandler(&logs, nil))))
	assert.Empty(t, logs.String(), "DPO disables dropout, as TRL does")
}
