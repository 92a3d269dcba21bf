package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
)

// Family names a supported decoder architecture by its Hugging Face `model_type`.
type Family string

// The supported families.
const (
	Llama   Family = "llama"
	Mistral Family = "mistral"
	Qwen2   Family = "qwen2"
	Qwen3   Family = "qwen3"
	Gemma   Family = "gemma"
	// Starcoder2 is BigCode's StarCoder2: LayerNorm with bias, a GELU MLP (c_fc/c_proj), biases
	// on every linear layer, a sliding window on every layer.
	Starcoder2 Family = "starcoder2"
	// Mixtral is Mistral's sparse mixture of experts: each layer routes every token to its top-k
	// experts (mixtral.go).
	Mixtral Family = "mixtral"
	// SmolLM3 is Llama with NoPE layers: every no_rope_layer_interval-th layer has no rotary
	// embedding (smollm3.go).
	SmolLM3 Family = "smollm3"
)

// architectures maps each family to the transformers class written into config.json.
var architectures = map[Family]string{
	Llama:   "LlamaForCausalLM",
	Mistral: "MistralForCausalLM",
	Qwen2:   "Qwen2ForCausalLM",
	Qwen3:   "Qwen3ForCausalLM",
	Gemma:   "GemmaForCausalLM",

	Starcoder2: "Starcoder2ForCausalLM",
	Mixtral:    "MixtralForCausalLM",
	SmolLM3:    "SmolLM3ForCausalLM",
}

// SupportedFamilies lists the model_type values this package implements, sorted.
func SupportedFamilies() []string {
	out := make([]string, 0, len(architectures))
	for f := range architectures {
		out = append(out, string(f))
	}
	sort.Strings(out)
	return out
}

// RopeScaling holds the `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5)
// block of a config. Type "default" (or empty) means no scaling.
type RopeScaling struct {
	Type                          string  `json:"rope_type,omitempty"`
	LegacyType                    string  `json:"type,omitempty"`
	Factor                        float64 `json:"factor,omitempty"`
	LowFreqFactor                 float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor                float64 `json:"high_freq_factor,omitempty"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings,omitempty"`
	// Theta is only present in transformers 5's rope_parameters.
	Theta float64 `json:"rope_theta,omitempty"`
}

// Kind returns the scaling type, reading the legacy "type" key when "rope_type" is absent.
func (r *RopeScaling) Kind() string {
	if r == nil {
		return "default"
	}
	if r.Type != "" {
		return r.Type
	}
	if r.LegacyType != "" {
		return r.LegacyType
	}
	return "default"
}

// Config is a decoder's Hugging Face config.json. Field names follow transformers.
type Config struct {
	ModelType             Family       `json:"model_type"`
	VocabSize             int          `json:"vocab_size"`
	HiddenSize            int          `json:"hidden_size"`
	IntermediateSize      int          `json:"intermediate_size"`
	NumHiddenLayers       int          `json:"num_hidden_layers"`
	NumAttentionHeads     int          `json:"num_attention_heads"`
	NumKeyValueHeads      int          `json:"num_key_value_heads"`
	HeadDim               int          `json:"head_dim"`
	RMSNormEps            float64      `json:"rms_norm_eps"`
	RopeTheta             float64      `json:"rope_theta"`
	RopeScaling           *RopeScaling `json:"rope_scaling"`
	RopeParameters        *RopeScaling `json:"rope_parameters"`
	MaxPositionEmbeddings int          `json:"max_position_embeddings"`
	TieWordEmbeddings     bool         `json:"tie_word_embeddings"`
	AttentionBias         bool         `json:"attention_bias"`
	MLPBias               bool         `json:"mlp_bias"`
	SlidingWindow         *int         `json:"sliding_window"`
	UseSlidingWindow      bool         `json:"use_sliding_window"`
	MaxWindowLayers       int          `json:"max_window_layers"`
	LayerTypes            []string     `json:"layer_types"`
	HiddenAct             string       `json:"hidden_act"`
	HiddenActivation      string       `json:"hidden_activation"`
	InitializerRange      float64      `json:"initializer_range"`
	TorchDType            string       `json:"torch_dtype"`
	DType                 string       `json:"dtype"`
	BOSTokenID            TokenIDs     `json:"bos_token_id"`
	EOSTokenID            TokenIDs     `json:"eos_token_id"`
	PadTokenID            TokenIDs     `json:"pad_token_id"`

	// Starcoder2: LayerNorm's epsilon and the bias switch of every linear layer.
	NormEpsilon float64 `json:"norm_epsilon"`
	UseBias     bool    `json:"use_bias"`
	// Mixtral's sparse MoE block: experts, experts per token, and the load-balancing loss.
	NumLocalExperts    int     `json:"num_local_experts"`
	NumExpertsPerTok   int     `json:"num_experts_per_tok"`
	OutputRouterLogits bool    `json:"output_router_logits"`
	RouterAuxLossCoef  float64 `json:"router_aux_loss_coef"`
	RouterJitterNoise  float64 `json:"router_jitter_noise"`
	// SmolLM3's NoPE layers: no_rope_layers[i] is 1 where layer i applies RoPE, 0 where it does
	// not; absent, every no_rope_layer_interval-th layer is NoPE.
	NoRopeLayers        []int `json:"no_rope_layers"`
	NoRopeLayerInterval int   `json:"no_rope_layer_interval"`
	// Dropout probabilities transformers applies in training (attention probabilities;
	// Starcoder2's embeddings and residual branches).
	AttentionDropout float64 `json:"attention_dropout"`
	EmbeddingDropout float64 `json:"embedding_dropout"`
	ResidualDropout  float64 `json:"residual_dropout"`

	// raw keeps every key of the file so Save writes back what it did not interpret.
	raw map[string]json.RawMessage
}

// TokenIDs is a token id field that config.json may hold as null, an int or a list of ints.
type TokenIDs []int

// UnmarshalJSON accepts null, a number or a list of numbers.
func (t *TokenIDs) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*t = nil
		return nil
	}
	if strings.HasPrefix(s, "[") {
		var ids []int
		if err := json.Unmarshal(b, &ids); err != nil {
			return err
		}
		*t = ids
		return nil
	}
	var id int
	if err := json.Unmarshal(b, &id); err != nil {
		return err
	}
	*t = TokenIDs{id}
	return nil
}

// MarshalJSON writes a single id as a number, several as a list, none as null (as transformers does).
func (t TokenIDs) MarshalJSON() ([]byte, error) {
	switch len(t) {
	case 0:
		return []byte("null"), nil
	case 1:
		return json.Marshal(t[0])
	default:
		return json.Marshal([]int(t))
	}
}

// familyDefaults are transformers' class defaults for keys a config.json may omit.
func familyDefaults(f Family) Config {
	c := Config{
		ModelType: f, VocabSize: 32000, HiddenSize: 4096, IntermediateSize: 11008, NumHiddenLayers: 32,
		NumAttentionHeads: 32, RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 2048,
		HiddenAct: "silu", InitializerRange: 0.02,
	}
	switch f {
	case Mistral:
		c.IntermediateSize, c.NumKeyValueHeads, c.MaxPositionEmbeddings = 14336, 8, 4096*32
		w := 4096
		c.SlidingWindow = &w
	case Qwen2, Qwen3:
		c.VocabSize, c.IntermediateSize, c.MaxPositionEmbeddings, c.MaxWindowLayers = 151936, 22016, 32768, 28
		if f == Qwen3 {
			c.HeadDim = 128
		}
	case Gemma:
		c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 256000, 3072, 24576, 28
		c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.MaxPositionEmbeddings = 16, 16, 256, 8192
		c.HiddenAct, c.TieWordEmbeddings = "gelu_pytorch_tanh", true
	case Starcoder2, Mixtral, SmolLM3:
		newFamilyDefaults(&c)
	}
	return c
}

// ParseConfig decodes a config.json document, fills transformers' defaults and validates it.
func ParseConfig(data []byte) (*Config, error) {
	var probe struct {
		ModelType string `json:"model_type"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	fam := Family(probe.ModelType)
	if _, ok := architectures[fam]; !ok {
		return nil, fmt.Errorf("config.json: unsupported model_type %q (supported: %s)",
			probe.ModelType, strings.Join(SupportedFamilies(), ", "))
	}
	c := familyDefaults(fam)
	// Gemma ties by default; an explicit false in the file must win, so decode over the defaults.
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	if err := json.Unmarshal(data, &c.raw); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	if _, ok := c.raw["tie_word_embeddings"]; !ok {
		c.TieWordEmbeddings = familyDefaults(fam).TieWordEmbeddings
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if c.RopeParameters != nil && c.RopeParameters.Theta != 0 {
		c.RopeTheta = c.RopeParameters.Theta
	}
	c.deriveFamilyFields()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	return &c, nil
}

// LoadConfig reads and parses a config.json file (or the config.json inside a directory).
func LoadConfig(path string) (*Config, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = path + string(os.PathSeparator) + "config.json"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading model config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate checks the sizes and options the decoder relies on.
func (c *Config) Validate() error {
	positive := []struct {
		key string
		v   int
	}{
		{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads},
		{"num_key_value_heads", c.NumKeyValueHeads}, {"head_dim", c.HeadDim},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("%s must be positive, got %d", p.key, p.v)
		}
	}
	if c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return fmt.Errorf("num_attention_heads (%d) must be a multiple of num_key_value_heads (%d)",
			c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("head_dim must be even for rotary embeddings, got %d", c.HeadDim)
	}
	if c.RMSNormEps <= 0 {
		return fmt.Errorf("rms_norm_eps must be positive, got %g", c.RMSNormEps)
	}
	if c.RopeTheta <= 0 {
		return fmt.Errorf("rope_theta must be positive, got %g", c.RopeTheta)
	}
	if _, err := activationByName(c.Activation()); err != nil {
		return err
	}
	switch k := c.Rope().Kind(); k {
	case "default", "linear", "llama3":
	default:
		return fmt.Errorf("rope_scaling type %q is not supported (supported: default, linear, llama3)", k)
	}
	if r := c.Rope(); r.Kind() != "default" && r.Factor <= 0 {
		return fmt.Errorf("rope_scaling.factor must be positive, got %g", r.Factor)
	}
	for i, t := range c.LayerTypes {
		if t != "full_attention" && t != "sliding_attention" {
			return fmt.Errorf("layer_types[%d]: unknown attention type %q", i, t)
		}
	}
	return c.validateFamily()
}

// Rope returns the active rope scaling block (rope_parameters wins over rope_scaling), or nil.
func (c *Config) Rope() *RopeScaling {
	if c.RopeParameters != nil && c.RopeParameters.Kind() != "default" {
		return c.RopeParameters
	}
	if c.RopeScaling != nil {
		return c.RopeScaling
	}
	return nil
}

// Activation is the MLP activation's transformers name. Gemma's hidden_activation wins, and
// Gemma's legacy hidden_act "gelu" means the tanh approximation (transformers rewrites it so).
func (c *Config) Activation() string {
	if c.ModelType == Gemma {
		if c.HiddenActivation != "" {
			return c.HiddenActivation
		}
		if c.HiddenAct == "gelu" {
			return "gelu_pytorch_tanh"
		}
	}
	return c.HiddenAct
}

// LayerSlidingWindow returns the attention window of layer i in tokens, or 0 for full attention.
// It follows each family's rule: Mistral windows every layer; Qwen2/Qwen3 only with
// use_sliding_window, from max_window_layers on; layer_types, when present, decides.
func (c *Config) LayerSlidingWindow(i int) int {
	if c.SlidingWindow == nil || *c.SlidingWindow <= 0 {
		return 0
	}
	if len(c.LayerTypes) > i && c.ModelType != SmolLM3 {
		if c.LayerTypes[i] == "sliding_attention" {
			return *c.SlidingWindow
		}
		return 0
	}
	switch c.ModelType {
	case Mistral, Starcoder2, Mixtral:
		return *c.SlidingWindow
	case SmolLM3:
		return c.smolLM3SlidingWindow(i)
	case Qwen2, Qwen3:
		if c.UseSlidingWindow && i >= c.MaxWindowLayers {
			return *c.SlidingWindow
		}
	}
	return 0
}

// InvFrequencies returns RoPE's inverse frequencies (head_dim/2 values) after scaling, computed
// as transformers does in float32-compatible steps.
func (c *Config) InvFrequencies() []float64 {
	half := c.HeadDim / 2
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(c.HeadDim))
	}
	r := c.Rope()
	switch r.Kind() {
	case "linear":
		for i := range inv {
			inv[i] /= r.Factor
		}
	case "llama3":
		oldCtx := float64(r.OriginalMaxPositionEmbeddings)
		lowWavelen := oldCtx / r.LowFreqFactor
		highWavelen := oldCtx / r.HighFreqFactor
		for i, f := range inv {
			wavelen := 2 * math.Pi / f
			switch {
			case wavelen > lowWavelen:
				inv[i] = f / r.Factor
			case wavelen < highWavelen:
				inv[i] = f
			default:
				smooth := (oldCtx/wavelen - r.LowFreqFactor) / (r.HighFreqFactor - r.LowFreqFactor)
				inv[i] = (1-smooth)*f/r.Factor + smooth*f
			}
		}
	}
	return inv
}

// MarshalJSON writes config.json: every key read from the file, verbatim unless the field was
// changed since, plus `architectures` so transformers' AutoModelForCausalLM can load it.
func (c *Config) MarshalJSON() ([]byte, error) {
	now, err := c.typedFields()
	if err != nil {
		return nil, err
	}
	var asRead map[string]json.RawMessage
	if c.raw != nil {
		orig, err := json.Marshal(c.raw)
		if err != nil {
			return nil, err
		}
		parsed, err := ParseConfig(orig)
		if err != nil {
			return nil, err
		}
		if asRead, err = parsed.typedFields(); err != nil {
			return nil, err
		}
	}
	out := map[string]json.RawMessage{}
	for k, v := range c.raw {
		out[k] = v
	}
	for k, v := range now {
		_, known := c.raw[k]
		unchanged := known && string(asRead[k]) == string(v)
		if !unchanged && (known || alwaysWritten[k] || !isEmptyJSON(v)) {
			out[k] = v
		}
	}
	if _, ok := out["architectures"]; !ok {
		arch, _ := json.Marshal([]string{architectures[c.ModelType]})
		out["architectures"] = arch
	}
	return json.MarshalIndent(out, "", "  ")
}

// typedFields renders the interpreted fields as JSON values by key.
func (c *Config) typedFields() (map[string]json.RawMessage, error) {
	type plain Config
	typed, err := json.Marshal((*plain)(c))
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	err = json.Unmarshal(typed, &fields)
	return fields, err
}

// alwaysWritten are keys whose zero value differs from some family's default, so omitting them
// would change the model transformers builds.
var alwaysWritten = map[string]bool{"tie_word_embeddings": true, "attention_bias": true, "use_sliding_window": true}

func isEmptyJSON(v json.RawMessage) bool {
	switch strings.TrimSpace(string(v)) {
	case "null", "0", "false", `""`, "[]":
		return true
	}
	return false
}
