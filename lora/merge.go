package lora

import (
	"fmt"

	"handbook/model"
)

// MergedWeights returns the base model's weights with the adapter folded in, W + s·B·A, as
// PEFT's merge_and_unload computes them (float32 product, added to the base in its dtype); NF4
// bases are dequantized. The adapter and the model are unchanged; untouched weights are shared.
func (a *Adapter) MergedWeights() (model.Weights, error) {
	out := model.Weights{}
	for n, t := range a.model.Weights {
		if isAdapterWeight(n) || isQuantizedWeight(n) {
			continue
		}
		out[n] = t
	}
	if err := dequantizeInto(a.model, out); err != nil {
		return nil, err
	}
	for _, mod := range a.Modules {
		wName := mod + ".weight"
		base := out[wName]
		if base == nil {
			return nil, fmt.Errorf("lora: merge: the model has no weight %s", wName)
		}
		w, err := model.Float32Values(base)
		if err != nil {
			return nil, fmt.Errorf("lora: merge %s: %w", wName, err)
		}
		av, err := model.Float32Values(a.model.Weights[loraA(mod)])
		if err != nil {
			return nil, fmt.Errorf("lora: merge %s: %w", loraA(mod), err)
		}
		bv, err := model.Float32Values(a.model.Weights[loraB(mod)])
		if err != nil {
			return nil, fmt.Errorf("lora: merge %s: %w", loraB(mod), err)
		}
		dims := base.Shape().Dimensions
		rows, cols, r := dims[0], dims[1], a.Config.R
		merged := make([]float32, len(w))
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				var d float32
				for k := 0; k < r; k++ {
					d += bv[i*r+k] * av[k*cols+j]
				}
				merged[i*cols+j] = w[i*cols+j] + d*float32(a.scale)
			}
		}
		out[wName] = model.FromFloat32s(merged, base.DType(), dims)
	}
	return out, nil
}

// Merge returns a new model whose weights have the adapter folded in (see MergedWeights): a
// plain Hugging Face model that m.Save writes as a full checkpoint transformers loads.
func (a *Adapter) Merge() (*model.Model, error) {
	w, err := a.MergedWeights()
	if err != nil {
		return nil, err
	}
	m, err := model.New(a.model.Backend(), a.model.Config, w)
	if err != nil {
		return nil, fmt.Errorf("lora: merge: %w", err)
	}
	return m, nil
}
