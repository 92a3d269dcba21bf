package memory

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/go-xla/compute/xla"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified

	"handbook/dpo"
	"handbook/lora"
	"handbook/model"
	"handbook/train"
	"handbook/zero"
)

// Task is what the step optimizes.
type Task string

// The tasks: supervised fine-tuning (causal LM loss) and DPO (pairs of rows).
const (
	SFT Task = "sft"
	DPO Task = "dpo"
)

// Config is a training configuration, as a recipe and an accelerate config describe it.
type Config struct {
	Model *model.Config
	Task  Task
	// Weights is the dtype the weights are stored in (the recipe's dtype; InvalidDType means
	// float32); Autocast is bf16: true.
	Weights  dtypes.DType
	Autocast bool
	// LoRA, when set, trains an adapter on a frozen base; QLoRA also stores the base's linear
	// weights in NF4.
	LoRA  *lora.Config
	QLoRA *lora.QuantizeOptions
	// Stage and Devices are the ZeRO placement (Devices ≥ 1; 1: no placement).
	Stage   zero.Stage
	Devices int
	// Batch is rows per device per micro-batch (DPO: pairs, each two rows); Seq tokens per row.
	Batch, Seq            int
	GradientCheckpointing bool
	GradientAccumulation  int

	measuring bool // set by Measure: bf16 compiles as measureDType
}

// Measurement is XLA's accounting of a configuration's training step, per device (device 0).
type Measurement struct {
	Step train.StepMemory
	// Reference is DPO's frozen reference copy (full fine-tuning): its weights, kept whole on the
	// first device for the run, and the graph that scores each global batch with them there.
	ReferenceWeights int64
	Reference        *train.GraphMemory
	// ReferencePeak is the device's memory while the reference scores a batch: the policy's model
	// states (its gradients are not alive yet) and the scoring graph's own peak.
	ReferencePeak int64
	// Peak is the device's largest memory over the step: the step's peak with the reference's
	// weights alongside, or the scoring graph's with the policy's model states alongside.
	Peak int64
}

// Measure compiles c's training step on b, an XLA backend with at least c.Devices devices (the
// XLA CPU plugin: backend.NewXLACPU), from shapes alone.
//
// XLA's CPU compiler has no bf16 arithmetic: it evaluates 16-bit matrix products on float32
// copies of their operands, weights included, and CSE keeps those copies alive from the forward to
// the backward pass — memory a GPU, whose GEMMs read 16-bit operands, never spends. So that the
// figures are a GPU's, Measure compiles bf16 as float16 (the same bytes) with
// Decoder.NativeAccumulation; the CPU compiler then runs the f16 products natively provided its
// change-op-data-type pass is off — UseGPUShapedXLAFlags, called before the process's first XLA
// compilation (XLA reads XLA_FLAGS once).
//
// Sharded over several devices, every scheduling barrier of a checkpointed layer (go-xla adds 0·d
// for d, element 0 of the dependency: a row only the first device holds when the batch is split)
// is a scalar all-reduce. The CPU compiler's all-reduce combiner merges those with the weight
// gradients' all-reduces of other layers, which defers every layer's weight-gradient products to
// the end of the backward pass and keeps each layer's recomputed activations until then (measured:
// Mistral-7B ZeRO-3, 0.91 GiB per layer). The flags turn that pass off too; it changes no value.
//
// On a GPU backend (the XLA CUDA plugin) the step compiles as it would train: bf16 as bf16.
func Measure(b compute.Backend, c Config) (Measurement, error) {
	cpu := true
	if x, ok := b.(*xla.Backend); ok {
		cpu = x.IsCPU()
	}
	if cpu {
		c = gpuShaped(c)
	}
	plan, err := Plan(c)
	if err != nil {
		return Measurement{}, err
	}
	plan.Decoder.NativeAccumulation = cpu
	step, err := train.CompileStepMemory(b, plan)
	if err != nil {
		return Measurement{}, err
	}
	m := Measurement{Step: step, Peak: step.Peak}
	if c.Task != DPO || c.LoRA != nil {
		return m, nil
	}
	// dpo.Trainer scores the reference with a full frozen copy of the weights in a one-device
	// graph, on the global batch (every device's pairs).
	names := plan.Decoder.Config.ParamSpecs()
	var inputs []shapes.Shape
	for _, s := range names {
		shape := shapes.Make(c.Weights, s.Dims...)
		inputs = append(inputs, shape)
		m.ReferenceWeights += int64(shape.Memory())
	}
	rows := 2 * c.Batch * max(c.Devices, 1)
	for range 3 {
		inputs = append(inputs, shapes.Make(dtypes.Int32, rows, c.Seq))
	}
	dec := *plan.Decoder
	dec.GradientCheckpointing = false // an inference graph
	ref, err := train.CompileGraphMemory(b, "reference scorer", inputs, func(in []*Node) []*Node {
		p := model.Params{}
		for i, s := range names {
			p[s.Name] = in[i]
		}
		n := len(names)
		batch := map[string]*Node{"input_ids": in[n], "attention_mask": in[n+1], "labels": in[n+2]}
		return []*Node{dpo.ReferenceLogps(&dec, p, batch)}
	})
	if err != nil {
		return Measurement{}, err
	}
	m.Reference = &ref
	m.ReferencePeak = step.Weights + step.Masters + step.OptimizerState + ref.Peak // the reference's weights are its arguments
	m.Peak = max(step.Peak+m.ReferenceWeights, m.ReferencePeak)
	return m, nil
}

// Plan is c's training step as train.CompileStepMemory takes it.
func Plan(c Config) (train.MemoryPlan, error) {
	if c.Model == nil || c.Batch <= 0 || c.Seq <= 0 {
		return train.MemoryPlan{}, fmt.Errorf("memory: a model config, a batch and a sequence length are required")
	}
	if c.Weights == dtypes.InvalidDType {
		c.Weights = dtypes.Float32
	}
	weights := map[string]shapes.Shape{}
	for _, s := range c.Model.ParamSpecs() {
		weights[s.Name] = shapes.Make(c.Weights, s.Dims...)
	}
	dec := &model.Decoder{Config: c.Model, GradientCheckpointing: c.GradientCheckpointing}
	if c.Autocast {
		dec.Autocast = c.autocastDType()
	}
	plan := train.MemoryPlan{Decoder: dec, MaxGradNorm: 1, GradientAccumulation: c.GradientAccumulation}
	var inner train.Objective = train.CausalLM{}
	if c.Task == DPO {
		inner = dpo.Objective{LossConfig: dpo.DefaultLossConfig()}
	}
	plan.Objective = inner
	if c.LoRA != nil {
		a, withAdapter, err := lora.Plan(c.Model, weights, *c.LoRA, c.QLoRA)
		if err != nil {
			return train.MemoryPlan{}, err
		}
		weights = withAdapter
		dec.Linear = a
		if len(a.Parameters) > 0 {
			dec.WeightAdapter = a
		}
		if obj, ok := inner.(dpo.Objective); ok {
			// The reference is the adapter-disabled base in the same graph, as dpo.Trainer runs it
			// (a planned adapter has no model for BaseDecoder; Disabled is the same decoder).
			obj.Reference, _ = lora.Disabled(dec)
			plan.Objective = obj
		}
		plan.Adapter = a
	}
	plan.Weights = weights
	if c.Devices > 1 {
		plan.Placement = &zero.Strategy{Stage: c.Stage, Devices: c.Devices}
	}
	rows := c.Batch * max(c.Devices, 1)
	plan.Batch = map[string]shapes.Shape{"input_ids": shapes.Make(dtypes.Int32, rows, c.Seq), "labels": shapes.Make(dtypes.Int32, rows, c.Seq),
		"attention_mask": shapes.Make(dtypes.Int32, rows, c.Seq)}
	if c.Task == DPO {
		for k := range plan.Batch {
			plan.Batch[k] = shapes.Make(dtypes.Int32, 2*rows, c.Seq)
		}
		if c.LoRA == nil {
			plan.Batch[dpo.RefChosenLogps] = shapes.Make(dtypes.Float32, rows)
			plan.Batch[dpo.RefRejectedLogps] = shapes.Make(dtypes.Float32, rows)
		}
	}
	return plan, nil
}

// measureDType stands in for bf16 in Measure's compilations (see Measure).
const measureDType = dtypes.Float16

// gpuShaped is c with bf16 replaced by measureDType.
func gpuShaped(c Config) Config {
	if c.Weights == dtypes.BFloat16 {
		c.Weights = measureDType
	}
	if c.QLoRA != nil && c.QLoRA.ComputeDType == dtypes.BFloat16 {
		q := *c.QLoRA
		q.ComputeDType = measureDType
		c.QLoRA = &q
	}
	c.measuring = true
	return c
}

// autocastDType is the dtype bf16: true computes in.
func (c Config) autocastDType() dtypes.DType {
	if c.measuring {
		return measureDType
	}
	return dtypes.BFloat16
}

// XLAFlags keep XLA's CPU compiler from turning float16 matrix products into float32 ones and
// from combining a sharded step's all-reduces across layers (see Measure).
const XLAFlags = "--xla_disable_hlo_passes=change-op-data-type,cpu-all-reduce-combiner"

// UseGPUShapedXLAFlags appends XLAFlags to XLA_FLAGS. XLA parses XLA_FLAGS once per process, so
// it must run before the first XLA compilation (the CLI and the tests call it first thing).
func UseGPUShapedXLAFlags() error {
	flags := os.Getenv("XLA_FLAGS")
	if strings.Contains(flags, XLAFlags) {
		return nil
	}
	if err := os.Setenv("XLA_FLAGS", strings.TrimSpace(flags+" "+XLAFlags)); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	return nil
}

// Estimate is zero.Estimate for c: the closed form `handbook estimate` prints.
func Estimate(c Config) (zero.Memory, zero.Counts, error) {
	if c.Model == nil {
		return zero.Memory{}, zero.Counts{}, fmt.Errorf("memory: a model config is required")
	}
	opts := zero.EstimateOptions{Stage: c.Stage, Devices: c.Devices, WeightBytes: 4, Autocast: c.Autocast,
		Seq: c.Seq, Batch: c.Batch, GradientCheckpointing: c.GradientCheckpointing, DPO: c.Task == DPO,
		GradientAccumulation: c.GradientAccumulation}
	if c.Weights == dtypes.BFloat16 || c.Weights == dtypes.Float16 {
		opts.WeightBytes = 2
	}
	if c.LoRA != nil {
		opts.LoRA = &zero.LoRA{Rank: c.LoRA.R, TargetModules: c.LoRA.TargetModules, Quantized4Bit: c.QLoRA != nil}
	}
	return zero.Estimate(c.Model, opts)
}
