package lora

import (
	"fmt"
	"strings"

	"handbook/model"
)

// MergedWeights returns the base model's weights with the adapter folded in, W + s·B·A (and the
// stacked experts' ΔW, split back into each expert's w1/w3/w2), as PEFT's merge_and_unload
// computes them (float32 product, added to the base in its dtype); NF4 bases are dequantized. The adapter and the model are unchanged; untouched weights are shared.
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
		t := a.targets[mod]
		delta, err := a.hostDelta(t)
		if err != nil {
			return nil, err
		}
		if err := addInto(out, mod+".weight", delta); err != nil {
			return nil, err
		}
	}
	for _, name := range a.Parameters {
		t := a.targets[name]
		delta, err := a.hostDelta(t)
		if err != nil {
			return nil, err
		}
		per := t.out * t.in
		pt := t.param
		module := strings.TrimSuffix(name, "."+pt.Param)
		switch {
		case t.experts == 0: // the router: its target name is its weight's
			err = addInto(out, name, delta)
		case pt.Param == "gate_up_proj": // rows [0, I) are w1, [I, 2I) w3
			half := per / 2
			for e := 0; e < t.experts && err == nil; e++ {
				err = addInto(out, fmt.Sprintf("%s.%d.w1.weight", module, e), delta[e*per:e*per+half])
				if err == nil {
					err = addInto(out, fmt.Sprintf("%s.%d.w3.weight", module, e), delta[e*per+half:(e+1)*per])
				}
			}
		default: // down_proj: w2
			for e := 0; e < t.experts && err == nil; e++ {
				err = addInto(out, fmt.Sprintf("%s.%d.w2.weight", module, e), delta[e*per:(e+1)*per])
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// hostDelta computes a target's s·ΔW in float32: [out, in], or [E, out, in] for stacked experts
// (ΔW[e] = Σ_k B[:, k·E+e] ⊗ A[e·r+k, :], PEFT's ParamWrapper layout).
func (a *Adapter) hostDelta(t *target) ([]float32, error) {
	av, err := model.Float32Values(a.model.Weights[loraA(t.name)])
	if err != nil {
		return nil, fmt.Errorf("lora: merge %s: %w", loraA(t.name), err)
	}
	bv, err := model.Float32Values(a.model.Weights[loraB(t.name)])
	if err != nil {
		return nil, fmt.Errorf("lora: merge %s: %w", loraB(t.name), err)
	}
	experts, rows := max(t.experts, 1), t.rows()
	delta := make([]float32, experts*t.out*t.in)
	for e := 0; e < experts; e++ {
		for i := 0; i < t.out; i++ {
			for j := 0; j < t.in; j++ {
				var d float32
				for k := 0; k < t.r; k++ {
					ai, bj := k, k // a plain matrix: A row k, B column k
					if t.experts > 0 {
						ai, bj = e*t.r+k, k*experts+e
					}
					d += bv[i*rows+bj] * av[ai*t.in+j]
				}
				delta[(e*t.out+i)*t.in+j] = d * float32(t.scale)
			}
		}
	}
	return delta, nil
}

// addInto replaces weights[name] by its float32 sum with delta, kept in the weight's dtype.
func addInto(weights model.Weights, name string, delta []float32) error {
	base := weights[name]
	if base == nil {
		return fmt.Errorf("lora: merge: the model has no weight %s", name)
	}
	w, err := model.Float32Values(base)
	if err != nil {
		return fmt.Errorf("lora: merge %s: %w", name, err)
	}
	if len(w) != len(delta) {
		return fmt.Errorf("lora: merge %s: %d values, the adapter's update has %d", name, len(w), len(delta))
	}
	merged := make([]float32, len(w))
	for i := range w {
		merged[i] = w[i] + delta[i]
	}
	weights[name] = model.FromFloat32s(merged, base.DType(), base.Shape().Dimensions)
	return nil
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
