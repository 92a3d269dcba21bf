package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, json, want string
	}{
		{"unsupported family", `{"model_type":"gpt2"}`, "unsupported model_type \"gpt2\" (supported: gemma, llama, mistral, mixtral, qwen2, qwen3, smollm3, starcoder2)"},
		{"not json", `{`, "config.json"},
		{"heads not multiple of kv heads", `{"model_type":"llama","num_attention_heads":4,"num_key_value_heads":3}`, "multiple of num_key_value_heads"},
		{"unknown rope type", `{"model_type":"llama","rope_scaling":{"rope_type":"yarn","factor":2}}`, "rope_scaling type \"yarn\""},
		{"unknown activation", `{"model_type":"llama","hidden_act":"mish"}`, "hidden_act \"mish\""},
		{"bad layer type", `{"model_type":"qwen2","layer_types":["full_attention","chunked"]}`, "layer_types[1]"},
		{"negative size", `{"model_type":"mistral","hidden_size":-4}`, "hidden_size must be positive"},
		{"top-k above experts", `{"model_type":"mixtral","num_local_experts":2,"num_experts_per_tok":3}`, "num_experts_per_tok must be in [1, num_local_experts=2], got 3"},
		{"no experts", `{"model_type":"mixtral","num_local_experts":0}`, "num_local_experts must be positive"},
		{"short no_rope_layers", `{"model_type":"smollm3","num_hidden_layers":3,"no_rope_layers":[1,0]}`, "no_rope_layers has 2 entries for 3 layers"},
		{"bad no_rope_layers", `{"model_type":"smollm3","num_hidden_layers":2,"no_rope_layers":[1,2]}`, "no_rope_layers[1] must be 0 or 1"},
		{"no interval", `{"model_type":"smollm3","no_rope_layer_interval":0}`, "no_rope_layer_interval must be positive"},
		{"layernorm eps", `{"model_type":"starcoder2","norm_epsilon":0}`, "norm_epsilon must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestConfigFamilyRules(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"model_type":"gemma","hidden_act":"gelu","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":1}`))
	require.NoError(t, err)
	assert.Equal(t, "gelu_pytorch_tanh", cfg.Activation(), "Gemma's legacy gelu means the tanh approximation")
	assert.True(t, cfg.TieWordEmbeddings, "Gemma ties by default")
	assert.Equal(t, 256, cfg.HeadDim, "Gemma's default head_dim")

	cfg, err = ParseConfig([]byte(`{"model_type":"qwen2","use_sliding_window":true,"sliding_window":16,"max_window_layers":1,"num_hidden_layers":3}`))
	require.NoError(t, err)
	assert.Equal(t, []int{0, 16, 16}, []int{cfg.LayerSlidingWindow(0), cfg.LayerSlidingWindow(1), cfg.LayerSlidingWindow(2)})

	cfg, err = ParseConfig([]byte(`{"model_type":"starcoder2","sliding_window":4,"num_hidden_layers":2}`))
	require.NoError(t, err)
	assert.True(t, cfg.TieWordEmbeddings, "StarCoder2 ties by default")
	assert.True(t, cfg.UseBias, "StarCoder2 has biases by default")
	assert.Equal(t, []int{4, 4}, []int{cfg.LayerSlidingWindow(0), cfg.LayerSlidingWindow(1)}, "every layer slides")

	// SmolLM3Config.__post_init__: every 4th layer is NoPE; with use_sliding_window the NoPE layers slide.
	cfg, err = ParseConfig([]byte(`{"model_type":"smollm3","num_hidden_layers":8,"use_sliding_window":true,"sliding_window":16}`))
	require.NoError(t, err)
	assert.Equal(t, []int{1, 1, 1, 0, 1, 1, 1, 0}, cfg.NoRopeLayers)
	assert.False(t, cfg.UsesRope(3))
	assert.Equal(t, []int{0, 16}, []int{cfg.LayerSlidingWindow(0), cfg.LayerSlidingWindow(3)})
	cfg, err = ParseConfig([]byte(`{"model_type":"smollm3","num_hidden_layers":2,"sliding_window":16,"layer_types":["sliding_attention","full_attention"]}`))
	require.NoError(t, err)
	assert.Zero(t, cfg.LayerSlidingWindow(0), "without use_sliding_window no layer slides")

	cfg, err = ParseConfig([]byte(`{"model_type":"mixtral","output_router_logits":true,"router_aux_loss_coef":0.01}`))
	require.NoError(t, err)
	assert.Equal(t, 8, cfg.NumLocalExperts)
	assert.Equal(t, 2, cfg.NumExpertsPerTok)
	assert.InDelta(t, 1e6, cfg.RopeTheta, 0, "Mixtral's default rope_theta")
	assert.InDelta(t, 0.01, NewDecoder(cfg).RouterAuxLossCoef, 0, "output_router_logits turns the aux loss on")

	cfg, err = ParseConfig([]byte(`{"model_type":"llama","eos_token_id":[2,7],"pad_token_id":null}`))
	require.NoError(t, err)
	assert.Equal(t, TokenIDs{2, 7}, cfg.EOSTokenID)
	assert.Nil(t, cfg.PadTokenID)
}

// TestInvFrequenciesMatchTransformers compares RoPE's scaled inverse frequencies (default, linear,
// llama3) with the inv_freq transformers computed for each fixture.
func TestInvFrequenciesMatchTransformers(t *testing.T) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			cfg, err := LoadConfig(filepath.Join(fixtureDir, name))
			require.NoError(t, err)
			data, err := os.ReadFile(filepath.Join(fixtureDir, name, "reference.json"))
			require.NoError(t, err)
			var ref struct {
				Summary struct {
					InvFreq       []float64 `json:"inv_freq"`
					SlidingWindow *int      `json:"sliding_window_effective"`
				} `json:"config_summary"`
			}
			require.NoError(t, json.Unmarshal(data, &ref))
			got := cfg.InvFrequencies()
			require.Len(t, got, len(ref.Summary.InvFreq))
			for i := range got {
				assert.InEpsilon(t, ref.Summary.InvFreq[i], got[i], 1e-6, "inv_freq[%d]", i)
			}
			wantWindow := 0
			if ref.Summary.SlidingWindow != nil {
				wantWindow = *ref.Summary.SlidingWindow
			}
			assert.Equal(t, wantWindow, cfg.LayerSlidingWindow(0))
		})
	}
}

func TestConfigRoundTripKeepsUnknownKeys(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join(fixtureDir, "llama_gqa"))
	require.NoError(t, err)
	data, err := json.Marshal(cfg)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(data, &out))
	assert.Equal(t, "llama", out["model_type"])
	assert.Contains(t, out, "pretraining_tp", "keys the decoder does not read are written back")
	assert.Equal(t, []any{"LlamaForCausalLM"}, out["architectures"])
	assert.Equal(t, map[string]any{"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
		"original_max_position_embeddings": 64.0, "rope_type": "llama3"}, out["rope_scaling"],
		"unchanged blocks are written back verbatim (transformers reads an added rope_theta: 0 as θ=0)")
	back, err := ParseConfig(data)
	require.NoError(t, err)
	assert.Equal(t, cfg.InvFrequencies(), back.InvFrequencies())

	cfg.VocabSize = 99
	data, err = json.Marshal(cfg)
	require.NoError(t, err)
	back, err = ParseConfig(data)
	require.NoError(t, err)
	assert.Equal(t, 99, back.VocabSize, "changed fields are written")
}
