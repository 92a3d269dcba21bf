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

// TrainingPrecision is what train.Engine keeps per trainable parameter stored in weightBytes
// bytes with AdamW: the stored (working) copy, a float32 gradient (gradients are accumulated,
// reduced and clipped in float32), the two float32 moments, and for a 16-bit weight its float32
// master — 2 + 4 + 12 = 18 bytes for bf16, 4 + 4 + 8 = 16 for float32. (The ZeRO paper's 16 counts
// 16-bit gradients; DeepSpeed's bf16 optimizer also keeps a float32 gradient partition.)
func TrainingPrecision(weightBytes float64) Precision {
	p := Precision{ParamBytes: weightBytes, GradBytes: 4, OptimizerBytes: 8}
	if weightBytes < 4 {
		p.OptimizerBytes += 4
	}
	return p
}

// AdapterPrecision is a LoRA adapter parameter's: float32 weights (PEFT's autocast_adapter_dtype)
// are their own master.
var AdapterPrecision = TrainingPrecision(4)

// Memory is a per-device memory estimate in bytes.
type Memory struct {
	Parameters  int64 `json:"parameters_bytes"`
	Gradients   int64 `json:"gradients_bytes"`
	Optimizer   int64 `json:"optimizer_bytes"`
	Activations int64 `json:"activations_bytes"`
	// Reference is DPO's frozen reference copy on this device (full fine-tuning; see
	// EstimateOptions.DPO).
	Reference int64 `json:"reference_bytes"`
}

// ModelStates is parameters + gradients + optimizer state: what ZeRO partitions.
func (m Memory) ModelStates() int64 { return m.Parameters + m.Gradients + m.Optimizer }

// Total adds the activations and the reference copy: the step's peak.
func (m Memory) Total() int64 { return m.ModelStates() + m.Activations + m.Reference }

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
	// WeightBytes is a weight's storage size: 2 for bf16 (the recipe's dtype: bfloat16; the
	// default) or 4 for float32.
	WeightBytes float64
	// Autocast is bf16: true: matrix products and the activations they produce are 16-bit even
	// over float32 weights.
	Autocast bool
	// Precision of trainable parameters; the zero value means TrainingPrecision(WeightBytes)
	// (AdapterPrecision for a LoRA adapter).
	Precision Precision
	// FrozenBytes per frozen (non-adapter) parameter; 0 means WeightBytes.
	FrozenBytes float64
	LoRA        *LoRA
	// Seq and Batch (rows per device per micro-batch; DPO: pairs) size the activations; 0 skips them.
	Seq, Batch            int
	GradientCheckpointing bool
	// DPO: each pair is two rows, and a full fine-tune keeps a frozen reference copy. dpo.Trainer
	// holds that copy whole on the first device and scores every step's global batch with it
	// there, so with several devices the first one carries it (Memory.Reference).
	DPO bool
	// GradientAccumulation > 1 keeps a second set of float32 gradients while a micro-batch's are
	// added to the running sums (no input/output aliasing on XLA).
	GradientAccumulation int
}

// Counts are the parameter counts behind an estimate.
type Counts struct {
	Total, Trainable, Frozen, Quantized int64
}

// Estimate returns the per-device memory of training a model with the options, and the parameter
// counts it used: the model states train.Engine keeps (TrainingPrecision, partitioned by the ZeRO
// stage), the activations (see activations; fused attention kernels remove its a·s² term), and
// DPO's reference copy. It describes this library's training step, as XLA compiles it on one
// device; docs/PERFORMANCE.md compares it with XLA's accounting for the seed's configurations,
// including where a sharded or quantized step needs more than it says.
func Estimate(cfg *model.Config, opts EstimateOptions) (Memory, Counts, error) {
	st := Strategy{Stage: opts.Stage, Devices: opts.Devices}
	if err := st.Validate(); err != nil {
		return Memory{}, Counts{}, err
	}
	if cfg == nil {
		return Memory{}, Counts{}, fmt.Errorf("zero: estimate needs a model config")
	}
	wb := opts.WeightBytes
	if wb == 0 {
		wb = 2
	}
	prec := opts.Precision
	if prec == (Precision{}) {
		prec = TrainingPrecision(wb)
		if opts.LoRA != nil {
			prec = AdapterPrecision
		}
	}
	frozenBytes := opts.FrozenBytes
	if frozenBytes == 0 {
		frozenBytes = wb
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
	if opts.GradientAccumulation > 1 {
		m.Gradients *= 2
	}
	act := activations(cfg, opts, wb)
	if opts.DPO && opts.LoRA == nil {
		m.Reference = int64(float64(c.Total) * wb)
		if opts.Devices > 1 && opts.Seq > 0 && opts.Batch > 0 {
			// The first device scores the global batch with the reference: about 6.5 bytes per
			// logit (float32 logits, their log-softmax and gather), measured with XLA.
			rows := 2 * float64(opts.Batch) * float64(opts.Devices)
			act = max(act, 6.5*rows*float64(opts.Seq)*float64(cfg.VocabSize))
		}
	}
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
	if allLinear(targets) {
		return true
	}
	for _, t := range targets {
		if strings.HasSuffix(module, "."+t) {
			return true
		}
	}
	return false
}

// allLinear says whether targets select every linear layer: none given, or PEFT's "all-linear".
func allLinear(targets []string) bool {
	return len(targets) == 0 || (len(targets) == 1 && targets[0] == "all-linear")
}

// adaptedWholeWeights counts the LoRA parameters PEFT puts on an MoE block's router and experts
// (target_parameters): with "all-linear", or the transformers 4 names gate, w1+w3 (fused
// gate_up_proj, at twice the rank) and w2. Stacked experts hold r·E rows: r·E·(in+out) values.
func adaptedWholeWeights(cfg *model.Config, l *LoRA) int64 {
	all := allLinear(l.TargetModules)
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

// activations estimates the decoder's activation memory per device. The terms follow
// Korthikanti et al. 2022 (eq. 1: s·b·h·34 bytes per layer in 16 bits, 19 of them the MLP's, once
// per routed expert for a mixture of experts; plus the attention scores' a·s²·b term) adjusted to
// this decoder as XLA compiles it: the softmax is float32 (16-bit scores, float32 scores and
// probabilities, 16-bit probabilities: 12 bytes per score where the paper has 5), plus 16 bytes
// per logit. That last term was the unfused causal-LM loss (16-bit and float32 logits,
// log-probabilities and their gradient) and still is DPO's and ORPO's; SFT's loss now runs fused in
// chunks (model.Decoder.CausalLMHeadLoss) and holds one chunk, but at Mistral-7B's shapes the
// step's peak is in a layer's backward pass (XLA's temporaries for LoRA at seq 2048 are 3.14 GiB at
// vocabulary 32000 and at 8000), whose transients the per-layer formula undercounts by about what
// the term adds at Mistral's vocabulary (0.87 against 0.98 GiB), so it is kept rather than
// stretched per case (at vocabulary 8000 the estimate is 4% low). With float32 weights and no autocast the
// layer terms double. With gradient checkpointing each layer's input (s·b·h in the weights' dtype)
// stays and one layer's activations are live while it is recomputed. Checked against XLA's
// compiled accounting of the real step (memory.Measure; docs/PERFORMANCE.md): Mistral-7B shapes,
// one device, batch 1–2 × 1k–2k tokens, within ±15%; small models come out high (up to 1.34×).
func activations(cfg *model.Config, opts EstimateOptions, weightBytes float64) float64 {
	if opts.Seq <= 0 || opts.Batch <= 0 {
		return 0
	}
	rows := float64(opts.Batch)
	if opts.DPO {
		rows *= 2
	}
	s, h := float64(opts.Seq), float64(cfg.HiddenSize)
	a, layers := float64(cfg.NumAttentionHeads), float64(cfg.NumHiddenLayers)
	tokens := rows * s
	width := 1.0 // 16-bit activations
	if weightBytes >= 4 && !opts.Autocast {
		width = 2
	}
	mlp := 19.0
	if cfg.IsMoE() {
		mlp *= float64(cfg.NumExpertsPerTok)
	}
	perLayer := width * ((15+mlp)*tokens*h + 12*a*rows*s*s)
	logits := 16 * tokens * float64(cfg.VocabSize)
	if opts.GradientCheckpointing {
		return layers*tokens*h*weightBytes + perLayer + logits
	}
	return layers*perLayer + logits
}
