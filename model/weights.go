package model

import (
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/gomlx/core/tensors"
)

// ParamKind tells how transformers initializes a parameter and whether weight decay applies.
type ParamKind int

// Parameter kinds.
const (
	KindMatrix    ParamKind = iota // linear or embedding weight: normal(0, initializer_range)
	KindBias                       // zeros
	KindNormScale                  // RMSNorm weight: ones (zeros for Gemma, which scales by 1+w)
)

// ParamSpec describes one weight of the model by its Hugging Face name.
type ParamSpec struct {
	Name string
	Dims []int
	Kind ParamKind
	// Linear marks the weight of a module the decoder applies through the Linear seam (what
	// LoRA's target_modules select). The MoE router and experts are used whole instead.
	Linear bool
}

// specAdder collects ParamSpecs.
type specAdder struct{ specs []ParamSpec }

func (a *specAdder) add(name string, kind ParamKind, dims ...int) {
	a.specs = append(a.specs, ParamSpec{Name: name, Dims: dims, Kind: kind})
}

// linear adds a Linear-seam module's weight [out, in] and, with bias, its bias [out].
func (a *specAdder) linear(module string, out, in int, bias bool) {
	a.specs = append(a.specs, ParamSpec{Name: module + ".weight", Dims: []int{out, in}, Kind: KindMatrix, Linear: true})
	if bias {
		a.add(module+".bias", KindBias, out)
	}
}

// ParamSpecs lists every weight the config implies, in Hugging Face names, sorted by name.
func (c *Config) ParamSpecs() []ParamSpec {
	h, hd := c.HiddenSize, c.HeadDim
	qOut, kvOut := c.NumAttentionHeads*hd, c.NumKeyValueHeads*hd
	a := &specAdder{}
	a.add("model.embed_tokens.weight", KindMatrix, c.VocabSize, h)
	oBias := c.AttentionBias || (c.ModelType == Starcoder2 && c.UseBias)
	qkvBias := oBias || c.ModelType == Qwen2
	for i := 0; i < c.NumHiddenLayers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		c.normSpecs(a, p+"input_layernorm")
		c.normSpecs(a, p+"post_attention_layernorm")
		a.linear(p+"self_attn.q_proj", qOut, h, qkvBias)
		a.linear(p+"self_attn.k_proj", kvOut, h, qkvBias)
		a.linear(p+"self_attn.v_proj", kvOut, h, qkvBias)
		a.linear(p+"self_attn.o_proj", h, qOut, oBias)
		if c.ModelType == Qwen3 {
			a.add(p+"self_attn.q_norm.weight", KindNormScale, hd)
			a.add(p+"self_attn.k_norm.weight", KindNormScale, hd)
		}
		c.feedForwardSpecs(a, p)
	}
	c.normSpecs(a, "model.norm")
	if !c.TieWordEmbeddings {
		a.linear("lm_head", c.VocabSize, h, false)
	}
	specs := a.specs
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	return specs
}

// normSpecs adds a norm's scale (and LayerNorm's bias).
func (c *Config) normSpecs(a *specAdder, module string) {
	a.add(module+".weight", KindNormScale, c.HiddenSize)
	if c.ModelType == Starcoder2 {
		a.add(module+".bias", KindBias, c.HiddenSize)
	}
}

// feedForwardSpecs adds layer prefix's MLP (or MoE block) weights.
func (c *Config) feedForwardSpecs(a *specAdder, prefix string) {
	h, inter := c.HiddenSize, c.IntermediateSize
	switch c.ModelType {
	case Starcoder2:
		a.linear(prefix+"mlp.c_fc", inter, h, c.UseBias)
		a.linear(prefix+"mlp.c_proj", h, inter, c.UseBias)
	case Mixtral:
		moeSpecs(c, a, prefix+moeModule)
	default:
		a.linear(prefix+"mlp.gate_proj", inter, h, c.MLPBias)
		a.linear(prefix+"mlp.up_proj", inter, h, c.MLPBias)
		a.linear(prefix+"mlp.down_proj", h, inter, c.MLPBias)
	}
}

// Weights holds a model's parameters by Hugging Face name.
type Weights map[string]*tensors.Tensor

// Names returns the weight names, sorted.
func (w Weights) Names() []string {
	names := make([]string, 0, len(w))
	for n := range w {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// RandomWeights initializes weights as transformers does for a from-scratch config:
// linear and embedding weights normal(0, initializer_range), biases zero, RMSNorm scales one
// (zero for Gemma), and the pad token's embedding row zero.
func RandomWeights(c *Config, dtype dtypes.DType, seed uint64) (Weights, error) {
	if dtype != dtypes.Float32 && dtype != dtypes.BFloat16 {
		return nil, fmt.Errorf("weights dtype %s is not supported (float32 or bfloat16)", dtype)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := Weights{}
	for _, s := range c.ParamSpecs() {
		n := 1
		for _, d := range s.Dims {
			n *= d
		}
		vals := make([]float32, n)
		switch s.Kind {
		case KindMatrix:
			for i := range vals {
				vals[i] = float32(rng.NormFloat64() * c.InitializerRange)
			}
			if s.Name == "model.embed_tokens.weight" && len(c.PadTokenID) == 1 && c.PadTokenID[0] >= 0 && c.PadTokenID[0] < c.VocabSize {
				clear(vals[c.PadTokenID[0]*c.HiddenSize : (c.PadTokenID[0]+1)*c.HiddenSize])
			}
		case KindNormScale:
			if c.ModelType != Gemma {
				for i := range vals {
					vals[i] = 1
				}
			}
		}
		w[s.Name] = FromFloat32s(vals, dtype, s.Dims)
	}
	return w, nil
}

// FromFloat32s builds a tensor of the wanted dtype (float32 or bfloat16) from float32 values.
func FromFloat32s(vals []float32, dtype dtypes.DType, dims []int) *tensors.Tensor {
	if dtype == dtypes.BFloat16 {
		bf := make([]bfloat16.BFloat16, len(vals))
		for i, v := range vals {
			bf[i] = bfloat16.FromFloat32(v)
		}
		return tensors.FromFlatDataAndDimensions(bf, dims...)
	}
	return tensors.FromFlatDataAndDimensions(vals, dims...)
}

// checkWeights verifies names and shapes against the config's specs.
func checkWeights(c *Config, w Weights, source string) error {
	for _, s := range c.ParamSpecs() {
		t, ok := w[s.Name]
		if !ok {
			return fmt.Errorf("%s: missing tensor %s", source, s.Name)
		}
		if !equalDims(t.Shape().Dimensions, s.Dims) {
			return fmt.Errorf("%s: tensor %s has shape %v, the config implies %v", source, s.Name, t.Shape().Dimensions, s.Dims)
		}
	}
	return nil
}

func equalDims(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
