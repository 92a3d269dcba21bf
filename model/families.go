package model

import "fmt"

// The families added after the Llama-like core (Starcoder2, Mixtral, SmolLM3) keep their config
// defaults, derived fields and checks here, and their blocks in starcoder2.go, mixtral.go and
// smollm3.go; the shared decoder calls them through norm, feedForward and usesRope.

// newFamilyDefaults sets transformers' class defaults of the newer families.
func newFamilyDefaults(c *Config) {
	switch c.ModelType {
	case Starcoder2:
		c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 49152, 3072, 12288, 30
		c.NumAttentionHeads, c.NumKeyValueHeads, c.MaxPositionEmbeddings = 24, 2, 4096
		c.HiddenAct, c.InitializerRange, c.NormEpsilon = "gelu_pytorch_tanh", 0.018042, 1e-5
		c.UseBias, c.TieWordEmbeddings = true, true
		c.BOSTokenID, c.EOSTokenID = TokenIDs{50256}, TokenIDs{50256}
	case Mixtral:
		c.IntermediateSize, c.NumKeyValueHeads, c.MaxPositionEmbeddings = 14336, 8, 4096*32
		c.RMSNormEps, c.RopeTheta = 1e-5, 1e6
		c.NumLocalExperts, c.NumExpertsPerTok, c.RouterAuxLossCoef = 8, 2, 0.001
		c.BOSTokenID, c.EOSTokenID = TokenIDs{1}, TokenIDs{2}
	case SmolLM3:
		c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 128256, 2048, 11008, 36
		c.NumAttentionHeads, c.NumKeyValueHeads, c.MaxPositionEmbeddings = 16, 4, 32768
		c.RopeTheta, c.TieWordEmbeddings, c.NoRopeLayerInterval = 2e6, true, 4
		c.PadTokenID, c.BOSTokenID, c.EOSTokenID = TokenIDs{128004}, TokenIDs{128000}, TokenIDs{128001}
	}
}

// deriveFamilyFields fills what transformers' config classes compute in __post_init__.
func (c *Config) deriveFamilyFields() {
	if c.ModelType == SmolLM3 && c.NoRopeLayers == nil && c.NoRopeLayerInterval > 0 {
		c.NoRopeLayers = make([]int, c.NumHiddenLayers)
		for i := range c.NoRopeLayers {
			if (i+1)%c.NoRopeLayerInterval != 0 {
				c.NoRopeLayers[i] = 1
			}
		}
	}
}

// validateFamily checks the family-specific keys.
func (c *Config) validateFamily() error {
	switch c.ModelType {
	case Starcoder2:
		if c.NormEpsilon <= 0 {
			return fmt.Errorf("norm_epsilon must be positive, got %g", c.NormEpsilon)
		}
	case Mixtral:
		if c.NumLocalExperts <= 0 {
			return fmt.Errorf("num_local_experts must be positive, got %d", c.NumLocalExperts)
		}
		if c.NumExpertsPerTok <= 0 || c.NumExpertsPerTok > c.NumLocalExperts {
			return fmt.Errorf("num_experts_per_tok must be in [1, num_local_experts=%d], got %d", c.NumLocalExperts, c.NumExpertsPerTok)
		}
	case SmolLM3:
		if c.NoRopeLayers == nil {
			return fmt.Errorf("no_rope_layer_interval must be positive when no_rope_layers is absent, got %d", c.NoRopeLayerInterval)
		}
		if len(c.NoRopeLayers) < c.NumHiddenLayers {
			return fmt.Errorf("no_rope_layers has %d entries for %d layers", len(c.NoRopeLayers), c.NumHiddenLayers)
		}
		for i, v := range c.NoRopeLayers {
			if v != 0 && v != 1 {
				return fmt.Errorf("no_rope_layers[%d] must be 0 or 1, got %d", i, v)
			}
		}
	}
	return nil
}

// UsesRope reports whether layer i applies rotary position embeddings (all but SmolLM3's NoPE
// layers).
func (c *Config) UsesRope(i int) bool {
	return c.ModelType != SmolLM3 || c.NoRopeLayers[i] == 1
}

// IsMoE reports whether the model's feed-forward blocks are sparse mixtures of experts.
func (c *Config) IsMoE() bool { return c.ModelType == Mixtral }
