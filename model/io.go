package model

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/gomlx/core/tensors"

	"handbook/safetensors"
)

// LoadOptions configures Load.
type LoadOptions struct {
	// DType is the dtype the weights are kept in: Float32 (the default, best on CPU) or BFloat16.
	DType dtypes.DType
}

// Load reads a Hugging Face model directory (config.json plus model.safetensors, or the
// sharded model.safetensors.index.json layout). Tensors are read from memory-mapped files one at a
// time, so peak memory is the model in the target dtype plus one tensor.
func Load(backend compute.Backend, dir string, opts LoadOptions) (*Model, error) {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	w, err := LoadWeights(dir, cfg, opts.DType)
	if err != nil {
		return nil, err
	}
	m, err := New(backend, cfg, w)
	if err != nil {
		return nil, err
	}
	if gen, err := os.ReadFile(filepath.Join(dir, generationConfigFile)); err == nil {
		m.generationConfig = gen
	}
	return m, nil
}

const generationConfigFile = "generation_config.json"

// LoadWeights reads the weights named by cfg's specs from the safetensors checkpoint in dir.
func LoadWeights(dir string, cfg *Config, dtype dtypes.DType) (Weights, error) {
	if dtype == dtypes.InvalidDType {
		dtype = dtypes.Float32
	}
	if dtype != dtypes.Float32 && dtype != dtypes.BFloat16 {
		return nil, fmt.Errorf("load %s: dtype %s is not supported (float32 or bfloat16)", dir, dtype)
	}
	ckpt, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	defer ckpt.Close()
	specs := cfg.ParamSpecs()
	expected := map[string]bool{}
	for _, s := range specs {
		expected[s.Name] = true
	}
	for _, name := range ckpt.Names() {
		if expected[name] || ignorableTensor(cfg, name) {
			continue
		}
		return nil, fmt.Errorf("load %s: tensor %s is not part of a %s model with this config", dir, name, cfg.ModelType)
	}
	w := Weights{}
	for _, s := range specs {
		t, err := ckpt.Tensor(s.Name)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", dir, err)
		}
		if !equalDims(t.Shape, s.Dims) {
			return nil, fmt.Errorf("load %s: tensor %s in %s has shape %v, config.json implies %v", dir, s.Name, t.File, t.Shape, s.Dims)
		}
		if dtype == dtypes.BFloat16 && t.DType == safetensors.BF16 {
			bits, err := t.BFloat16s()
			if err != nil {
				return nil, fmt.Errorf("load %s: %w", dir, err)
			}
			bf := make([]bfloat16.BFloat16, len(bits))
			for i, b := range bits {
				bf[i] = bfloat16.BFloat16(b)
			}
			w[s.Name] = tensors.FromFlatDataAndDimensions(bf, s.Dims...)
			continue
		}
		vals, err := t.Float32s()
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", dir, err)
		}
		w[s.Name] = FromFloat32s(vals, dtype, s.Dims)
	}
	return w, nil
}

// ignorableTensor reports tensors transformers itself ignores when loading: a tied model's
// lm_head copy and the rotary inverse frequencies old checkpoints stored.
func ignorableTensor(cfg *Config, name string) bool {
	return (cfg.TieWordEmbeddings && name == "lm_head.weight") || strings.HasSuffix(name, "rotary_emb.inv_freq")
}

// SaveOptions configures Save.
type SaveOptions struct {
	// MaxShardSize is the largest shard in bytes; 0 means transformers' default (5 GB) and a
	// negative value never shards.
	MaxShardSize int64
	// DType is the dtype written: Float32, BFloat16, or InvalidDType to keep each weight's own.
	DType dtypes.DType
}

// DefaultMaxShardSize is transformers' default max_shard_size ("5GB").
const DefaultMaxShardSize = 5_000_000_000

// Save writes the model as transformers' save_pretrained does: config.json,
// generation_config.json (when the model has one) and model.safetensors, sharded with an index
// above MaxShardSize. AutoModelForCausalLM.from_pretrained loads the result.
func (m *Model) Save(dir string, opts SaveOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	maxShard := opts.MaxShardSize
	switch {
	case maxShard == 0:
		maxShard = DefaultMaxShardSize
	case maxShard < 0:
		maxShard = 0
	}
	outDType := opts.DType
	if outDType == dtypes.InvalidDType {
		outDType = m.DType()
	}
	var sources []safetensors.Source
	for _, name := range m.Weights.Names() {
		src, err := weightSource(name, m.Weights[name], outDType)
		if err != nil {
			return fmt.Errorf("save model %s: %w", dir, err)
		}
		sources = append(sources, src)
	}
	if _, err := safetensors.SaveCheckpoint(dir, sources, safetensors.SaveOptions{MaxShardSize: maxShard}); err != nil {
		return fmt.Errorf("save model %s: %w", dir, err)
	}
	cfg := *m.Config
	cfg.TorchDType = DTypeName(outDType)
	if cfg.DType != "" {
		cfg.DType = cfg.TorchDType
	}
	data, err := json.Marshal(&cfg)
	if err != nil {
		return fmt.Errorf("save model %s: config.json: %w", dir, err)
	}
	if err := safetensors.WriteFileAtomic(filepath.Join(dir, "config.json"), writeBytes(data)); err != nil {
		return fmt.Errorf("save model %s: %w", dir, err)
	}
	if m.generationConfig != nil {
		if err := safetensors.WriteFileAtomic(filepath.Join(dir, generationConfigFile), writeBytes(m.generationConfig)); err != nil {
			return fmt.Errorf("save model %s: %w", dir, err)
		}
	}
	return nil
}

// DTypeName is a dtype's torch name ("float32", "bfloat16", …), as config.json's torch_dtype
// spells it.
func DTypeName(dt dtypes.DType) string {
	switch dt {
	case dtypes.Float32:
		return "float32"
	case dtypes.BFloat16:
		return "bfloat16"
	case dtypes.Float16:
		return "float16"
	}
	return strings.ToLower(dt.String())
}

// weightSource streams one weight into a safetensors writer in the wanted dtype.
func weightSource(name string, t *tensors.Tensor, dtype dtypes.DType) (safetensors.Source, error) {
	dims := t.Shape().Dimensions
	switch {
	case t.DType() == dtypes.BFloat16 && dtype == dtypes.BFloat16:
		bf, err := tensors.CopyFlatData[bfloat16.BFloat16](t)
		if err != nil {
			return safetensors.Source{}, fmt.Errorf("tensor %s: %w", name, err)
		}
		bits := make([]uint16, len(bf))
		for i, v := range bf {
			bits[i] = uint16(v)
		}
		return safetensors.BFloat16BitsSource(name, dims, bits), nil
	}
	vals, err := Float32Values(t)
	if err != nil {
		return safetensors.Source{}, fmt.Errorf("tensor %s: %w", name, err)
	}
	switch dtype {
	case dtypes.Float32:
		return safetensors.Float32Source(name, dims, vals), nil
	case dtypes.BFloat16:
		return safetensors.BFloat16Source(name, dims, vals), nil
	}
	return safetensors.Source{}, fmt.Errorf("tensor %s: dtype %s cannot be saved (float32 or bfloat16)", name, dtype)
}

// Float32Values copies a float32 or bfloat16 tensor's values as float32.
func Float32Values(t *tensors.Tensor) ([]float32, error) {
	switch t.DType() {
	case dtypes.Float32:
		return tensors.CopyFlatData[float32](t)
	case dtypes.BFloat16:
		bf, err := tensors.CopyFlatData[bfloat16.BFloat16](t)
		if err != nil {
			return nil, err
		}
		out := make([]float32, len(bf))
		for i, v := range bf {
			out[i] = v.Float32()
		}
		return out, nil
	}
	return nil, fmt.Errorf("dtype %s is not a supported weight dtype", t.DType())
}

// Init reads dir's config.json and draws fresh weights for it (RandomWeights, seeded by seed): a
// from-scratch model, for a directory that has a config but no checkpoint. dtype is the weights'
// dtype; the zero value (dtypes.InvalidDType) means float32.
func Init(backend compute.Backend, dir string, dtype dtypes.DType, seed uint64) (*Model, error) {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	if dtype == dtypes.InvalidDType {
		dtype = dtypes.Float32
	}
	w, err := RandomWeights(cfg, dtype, seed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return New(backend, cfg, w)
}

// HasWeights reports whether dir holds a safetensors checkpoint (single file or index).
func HasWeights(dir string) bool {
	for _, f := range []string{"model.safetensors", "model.safetensors.index.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

func writeBytes(data []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}
}
