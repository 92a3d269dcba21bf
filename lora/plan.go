package lora

import (
	"fmt"
	"maps"
	"slices"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"

	"handbook/model"
)

// Plan describes a LoRA (with quant: QLoRA) run on a model of mc without any weight: the adapter
// that computes it — the decoder's Linear, and its WeightAdapter when it adapts whole weights
// (Parameters); as a train.Adapter its Trainable and TrainingDecoder work without weights (it has
// no model: BaseDecoder, Model and the WeightsIO methods do not) — and every weight's storage
// shape — base maps the base model's weight names to their shapes; the result has the NF4 tensors
// in place of the quantized weights, exactly as QuantizeBase stores them, and the float32
// lora_A/lora_B weights Attach adds. It is what a shapes-only compilation of the training step
// (train.CompileStepMemory, with the adapter as MemoryPlan.Adapter) needs for a 7B model whose
// weights do not fit here.
func Plan(mc *model.Config, base map[string]shapes.Shape, cfg Config, quant *QuantizeOptions) (*Adapter, map[string]shapes.Shape, error) {
	out := maps.Clone(base)
	var linear model.Linear
	if quant != nil {
		l := &NF4Linear{Options: *quant, outDims: map[string]int{}}
		for _, mod := range LinearModules(mc) {
			if mod == "lm_head" {
				continue
			}
			shape, ok := base[mod+".weight"]
			if !ok {
				return nil, nil, fmt.Errorf("lora: plan: missing weight %s", mod+".weight")
			}
			padded := (shape.Size() + NF4BlockSize - 1) / NF4BlockSize * NF4BlockSize
			blocks := padded / NF4BlockSize
			delete(out, mod+".weight")
			out[mod+nf4Suffix] = shapes.Make(dtypes.Uint8, padded/2)
			if quant.DoubleQuant {
				out[mod+nf4AbsmaxSuffix] = shapes.Make(dtypes.Uint8, blocks)
				out[mod+nf4ScaleSuffix] = shapes.Make(dtypes.Float32, (blocks+NF4StatsBlockSize-1)/NF4StatsBlockSize)
				out[mod+nf4OffsetSuffix] = shapes.Make(dtypes.Float32, 1)
			} else {
				out[mod+nf4AbsmaxSuffix] = shapes.Make(dtypes.Float32, blocks)
			}
			l.outDims[mod] = shape.Dim(0)
		}
		linear = l
	}
	a, err := adapterFor(mc, slices.Sorted(maps.Keys(out)), linear, cfg)
	if err != nil {
		return nil, nil, err
	}
	for _, name := range a.targetNames() {
		t := a.targets[name]
		out[loraA(name)] = shapes.Make(dtypes.Float32, t.rows(), t.in)
		out[loraB(name)] = shapes.Make(dtypes.Float32, t.out, t.rows())
	}
	return a, out, nil
}
