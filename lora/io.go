package lora

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"

	"handbook/model"
	"handbook/safetensors"
)

// peftPrefix is the prefix PEFT gives every saved tensor of a causal LM adapter.
const peftPrefix = "base_model.model."

// PEFTName is the name PEFT uses in adapter_model.safetensors for an adapter or saved weight
// named as in model.Weights ("model.layers.0.self_attn.q_proj.lora_A.weight" →
// "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"). Adapters of whole-used
// weights are named after PEFT's wrapper modules instead (see Adapter.peftName).
func PEFTName(name string) string { return peftPrefix + name }

// peftName is PEFTName, with an adapted whole weight's A and B under PEFT's ParamWrapper path
// ("model.layers.0.block_sparse_moe.experts.gate_up_proj.lora_A.weight" →
// "base_model.model.model.layers.0.mlp.experts.base_layer.lora_A.weight").
func (a *Adapter) peftName(name string) string {
	for _, suffix := range []string{".lora_A.weight", ".lora_B.weight"} {
		if t := a.targets[strings.TrimSuffix(name, suffix)]; t != nil && strings.HasSuffix(name, suffix) {
			return peftPrefix + t.peft + suffix
		}
	}
	return PEFTName(name)
}

// Save writes the adapter as PEFT's save_pretrained does: adapter_config.json and
// adapter_model.safetensors (float32 A and B, plus the modules_to_save weights).
func (a *Adapter) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lora: save: %w", err)
	}
	var sources []safetensors.Source
	for _, n := range a.weightNames() {
		t := a.model.Weights[n]
		if t == nil {
			return fmt.Errorf("lora: save %s: the model has no weight %s", dir, n)
		}
		vals, err := model.Float32Values(t)
		if err != nil {
			return fmt.Errorf("lora: save %s: %s: %w", dir, n, err)
		}
		sources = append(sources, safetensors.Float32Source(a.peftName(n), t.Shape().Dimensions, vals))
	}
	if err := safetensors.Save(filepath.Join(dir, WeightsFile), sources, nil); err != nil {
		return fmt.Errorf("lora: save %s: %w", dir, err)
	}
	cfg, err := a.Config.marshalPEFT(a.Modules)
	if err != nil {
		return fmt.Errorf("lora: save %s: %w", dir, err)
	}
	return safetensors.WriteFileAtomic(filepath.Join(dir, ConfigFile), func(w io.Writer) error {
		_, err := w.Write(cfg)
		return err
	})
}

// weightNames lists the weights the adapter owns (A, B and modules_to_save), sorted.
func (a *Adapter) weightNames() []string {
	names := append([]string{}, a.Saved...)
	for _, m := range a.targetNames() {
		names = append(names, loraA(m), loraB(m))
	}
	sort.Strings(names)
	return names
}

// SaveWeights implements train.WeightsIO: checkpoints and output_dir hold the adapter.
func (a *Adapter) SaveWeights(dir string) error { return a.Save(dir) }

// LoadWeights implements train.WeightsIO: it reads the adapter's weights from dir, checked
// against the attached model, by model.Weights name.
func (a *Adapter) LoadWeights(dir string) (map[string]*tensors.Tensor, error) {
	return readAdapterWeights(a, dir)
}

// Load reads an adapter directory (PEFT's or handbook's) and attaches it to m. Shapes are
// checked against the base: a mismatch is an error naming the tensor.
func Load(m *model.Model, dir string) (*Adapter, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	a, err := newAdapter(m, cfg)
	if err != nil {
		return nil, fmt.Errorf("lora: load %s: %w", dir, err)
	}
	w, err := readAdapterWeights(a, dir)
	if err != nil {
		return nil, err
	}
	a.install(w)
	return a, nil
}

func readAdapterWeights(a *Adapter, dir string) (map[string]*tensors.Tensor, error) {
	path := filepath.Join(dir, WeightsFile)
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	defer f.Close()
	want := map[string][]int{}
	for _, name := range a.targetNames() {
		t := a.targets[name]
		want[loraA(name)] = []int{t.rows(), t.in}
		want[loraB(name)] = []int{t.out, t.rows()}
	}
	for _, n := range a.Saved {
		want[n] = a.model.Weights[n].Shape().Dimensions
	}
	byPEFT := map[string]string{}
	for name := range want {
		byPEFT[a.peftName(name)] = name
	}
	have := map[string]bool{}
	for _, n := range f.Names() {
		have[n] = true
		if !strings.HasPrefix(n, peftPrefix) {
			return nil, fmt.Errorf("lora: %s: tensor %s does not start with %q", path, n, peftPrefix)
		}
		if _, ok := byPEFT[n]; !ok {
			return nil, fmt.Errorf("lora: %s: tensor %s belongs to no module the adapter config selects on this model", path, n)
		}
	}
	out := map[string]*tensors.Tensor{}
	for name, dims := range want {
		pn := a.peftName(name)
		if !have[pn] {
			return nil, fmt.Errorf("lora: %s: missing tensor %s", path, pn)
		}
		t, err := f.Tensor(pn)
		if err != nil {
			return nil, fmt.Errorf("lora: %w", err)
		}
		if !equalDims(t.Shape, dims) {
			return nil, fmt.Errorf("lora: %s: tensor %s has shape %v, the base model implies %v (was the adapter trained on another base?)", path, pn, t.Shape, dims)
		}
		vals, err := t.Float32s()
		if err != nil {
			return nil, fmt.Errorf("lora: %w", err)
		}
		if isAdapterWeight(name) {
			out[name] = tensors.FromFlatDataAndDimensions(vals, dims...)
		} else {
			out[name] = model.FromFloat32s(vals, a.model.Weights[name].DType(), dims)
		}
	}
	return out, nil
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
