package zero

import (
	"fmt"
	"math"
	"strings"

	"handbook/model"
)

// Precision is the bytes a trainable parameter costs in each model state.
type Precision struct {
	ParamBytes     float64 // the working copy of the parameter
	GradBytes      float64 // its gradient
	OptimizerBytes float64 // optimizer state, including any fp32 master copy
}

// MixedPrecisionAdam is the ZeRO paper's assumption (Rajbhandari et al. 2020, §3.1): bf16/fp16
// parameters and gradients (2 + 2 bytes) and, for Adam, an fp32 master copy, momentum and variance
// (K = 12 bytes).
var MixedPrecisionAdam = Precision{ParamBytes: 2, GradBytes: 2, OptimizerBytes: 12}

// Memory is a per-device memory estimate in bytes.
type Memory struct {
	Parameters  int64 `json:"parameters_bytes"`
	Gradients   int64 `json:"gradients_bytes"`
	Optimizer   int64 `json:"optimizer_bytes"`
	Activations int64 `json:"activations_bytes"`
}

// ModelStates is parameters + gradients + optimizer state: what ZeRO partitions.
func (m Memory) ModelStates() int64 { return m.Parameters + m.Gradients + m.Optimizer }

// Total adds the activations.
func (m Memory) Total() int64 { return m.ModelStates() + m.Activations }

// ModelStates is the ZeRO paper's per-device model-state memory for numParams trainable parameters
// over devices devices: stage 0 keeps everything on every device, stage 1 partitions the optimizer
// state, stage 2 the gradients too, stage 3 the parameters too. With MixedPrecisionAdam that is
// 16Ψ, 4Ψ+12Ψ/N, 2Ψ+14Ψ/N and 16Ψ/N bytes.
func ModelStates(stage Stage, devices int, numParams int64, p Precision) Memory {
	psi := float64(numParams)
	n := float64(max(devices, 1))
	part := func(on bool, bytes float64) int64 {
		if on {
			return int64(bytes * psi / n)
		}
		return int64(bytes * psi)
	}
	return Memory{
		Parameters: part(stage >= Stage3, p.ParamBytes),
		Gradients:  part(stage >= Stage2, p.GradBytes),
		Optimizer:  part(stage >= Stage1, p.OptimizerBytes),
	}
}

// LoRA describes an adapter for the estimate: only its parameters are trained; the base model is
// frozen (no gradient, no optimizer state).
type LoRA struct {
	Rank int
	// TargetModules are module name suffixes ("q_proj", …); empty means PEFT's "all-linear" (every
	// linear layer of the decoder blocks, not lm_head).
	TargetModules []string
	// Quantized4Bit stores the frozen linear weights in 4-bit NF4 with double quantization, as
	// QLoRA does (bitsandbytes: 4 bits + 0.127 bits of quantization constants per weight); the
	// embeddings, norms and lm_head stay in 16 bits.
	Quantized4Bit bool
}

// EstimateOptions configure Estimate.
type EstimateOptions struct {
	Stage   Stage
	Devices int
	// Precision of trainable parameters; the zero value means MixedPrecisionAdam.
	Precision Precision
	// FrozenBytes per frozen (non-adapter) parameter; 0 means 2 (bf16).
	FrozenBytes float64
	LoRA        *LoRA
	// Seq and Batch (rows per device per micro-batch) size the activations; 0 skips them.
	Seq, Batch            int
	GradientCheckpointing bool
}

// Counts are the parameter counts behind an estimate.
type Counts struct {
	Total, Trainable, Frozen, Quantized int64
}

// Estimate returns the per-device memory of training a model with the options, and the parameter
// counts it used.
//
// Activations follow Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
// Transformer Models", eq. 1, 16-bit activations, no sequence parallelism): s·b·h·(34 + 5·a·s/h)
// bytes per layer (the MLP's 19 of the 34 once per routed expert for a mixture of experts), plus
// the logits (s·b·V, in 16 bits and again in fp32 for the loss). With
// gradient checkpointing only each layer's input (2·s·b·h bytes) is kept, plus one layer's full
// activations while it is recomputed. It is an estimate of the order of magnitude: kernels such as
// flash attention remove the a·s² term.
func Estimate(cfg *model.Config, opts EstimateOptions) (Memory, Counts, error) {
	st := Strategy{Stage: opts.Stage, Devices: opts.Devices}
	if err := st.Validate(); err != nil {
		return Memory{}, Counts{}, err
	}
	if cfg == nil {
		return Memory{}, Counts{}, fmt.Errorf("zero: estimate needs a model config")
	}
	prec := opts.Precision
	if prec == (Precision{}) {
		prec = MixedPrecisionAdam
	}
	frozenBytes := opts.FrozenBytes
	if frozenBytes == 0 {
		frozenBytes = 2
	}
	var c Counts
	for _, p := range cfg.ParamSpecs() {
		size := int64(1)
		for _, d := range p.Dims {
			size *= int64(d)
		}
		c.Total += size
		if opts.LoRA == nil {
			c.Trainable += size
			continue
		}
		c.Frozen += size
		if isAdapted(p, opts.LoRA.TargetModules) {
			if opts.LoRA.Rank <= 0 {
				return Memory{}, Counts{}, fmt.Errorf("zero: LoRA rank must be positive, got %d", opts.LoRA.Rank)
			}
			c.Trainable += int64(opts.LoRA.Rank) * int64(p.Dims[0]+p.Dims[1])
			if opts.LoRA.Quantized4Bit {
				c.Quantized += size
			}
		}
	}
	if opts.LoRA != nil {
		c.Trainable += adaptedWholeWeights(cfg, opts.LoRA)
	}
	m := ModelStates(opts.Stage, opts.Devices, c.Trainable, prec)
	frozen := float64(c.Frozen-c.Quantized)*frozenBytes + float64(c.Quantized)*(4+0.127)/8
	if opts.Stage >= Stage3 {
		frozen /= float64(opts.Devices)
	}
	m.Parameters += int64(frozen)
	act := activations(cfg, opts)
	if act >= math.MaxInt64 {
		return Memory{}, Counts{}, fmt.Errorf("zero: activations of %d × %d tokens overflow the estimate (%.3g bytes)", opts.Batch, opts.Seq, act)
	}
	m.Activations = int64(act)
	return m, c, nil
}

// isAdapted says whether a LoRA adapter wraps this weight: a decoder-block linear weight whose
// module matches a target (every one for "all-linear").
func isAdapted(p model.ParamSpec, targets []string) bool {
	if !p.Linear || !strings.HasPrefix(p.Name, "model.layers.") {
		return false
	}
	module := strings.TrimSuffix(p.Name, ".weight")
	if len(targets) == 0 || (len(targets) == 1 && targets[0] == "all-linear") {
		return true
	}
	for _, t := range targets {
		if strings.HasSuffix(module, "."+t) {
			return true
		}
	}
	return false
}

// adaptedWholeWeights counts the LoRA parameters PEFT puts on an MoE block's router and experts
// (target_parameters): with "all-linear", or the transformers 4 names gate, w1+w3 (fused
// gate_up_proj, at twice the rank) and w2. Stacked experts hold r·E rows: r·E·(in+out) values.
func adaptedWholeWeights(cfg *model.Config, l *LoRA) int64 {
	all := len(l.TargetModules) == 0 || (len(l.TargetModules) == 1 && l.TargetModules[0] == "all-linear")
	want := map[string]bool{}
	for _, t := range l.TargetModules {
		switch t {
		case "gate":
			want["weight"] = true
		case "w1", "w3":
			want["gate_up_proj"] = true
		case "w2":
			want["down_proj"] = true
		}
	}
	var n int64
	for _, pt := range cfg.ParamTargets() {
		if !all && !want[pt.Param] {
			continue
		}
		r := int64(l.Rank)
		if pt.Param == "gate_up_proj" {
			r *= 2
		}
		n += r * int64(max(pt.Experts, 1)) * int64(pt.In+pt.Out)
	}
	return n
}

func activations(cfg *model.Config, opts EstimateOptions) float64 {
	if opts.Seq <= 0 || opts.Batch <= 0 {
		return 0
	}
	s, b, h := float64(opts.Seq), float64(opts.Batch), float64(cfg.HiddenSize)
	a, layers := float64(cfg.NumAttentionHeads), float64(cfg.NumHiddenLayers)
	// 34 = 15 (attention and norms) + 19 (the MLP); a routed MoE block keeps its MLP activations
	// once per expert a token visits.
	mlp := 19.0
	if cfg.IsMoE() {
		mlp *= float64(cfg.NumExpertsPerTok)
	}
	perLayer := s * b * h * (15 + mlp + 5*a*s/h)
	logits := s * b * float64(cfg.VocabSize) * (2 + 4)
	if opts.GradientCheckpointing {
		return layers*2*s*b*h + perLayer + logits
	}
	return layers*perLayer + logits
}
