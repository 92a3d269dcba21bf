package model

// SmolLM3 is Llama's decoder with NoPE layers: the attention of a layer whose no_rope_layers
// entry is 0 sees no rotary embedding (Config.UsesRope; the decoder skips RoPE there). Its
// sliding window, when use_sliding_window is set, covers the layers layer_types marks
// "sliding_attention" — by default the NoPE layers, as SmolLM3Config derives them.

// smolLM3SlidingWindow is layer i's window under SmolLM3's rule (the caller checked that a
// window is configured).
func (c *Config) smolLM3SlidingWindow(i int) int {
	if !c.UseSlidingWindow {
		return 0
	}
	sliding := !c.UsesRope(i)
	if len(c.LayerTypes) > i {
		sliding = c.LayerTypes[i] == "sliding_attention"
	}
	if sliding {
		return *c.SlidingWindow
	}
	return 0
}
