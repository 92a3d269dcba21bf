package lora

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"

	"handbook/model"
)

// Adapter is a LoRA adapter attached to a model: it implements model.Linear by wrapping the
// model's previous Linear, y = W·x (+b) + s·B·(A·dropout(x)), for its target modules, and
// model.WeightAdapter for the weights a mixture-of-experts block uses whole (router, stacked
// experts: W + s·ΔW as PEFT's ParamWrapper computes ΔW). Its weights live in the model's Weights
// map next to the base weights, under "<target>.lora_A.weight" [r, in] and
// "<target>.lora_B.weight" [out, r], so train.Engine feeds them like any weight. It implements
// train.Adapter: set it as the Adapter of a trainer (sft, dpo, orpo) or of train.Engine and the
// run trains, checkpoints and saves the adapter alone.
type Adapter struct {
	// Config is the configuration as run on the model (for an MoE model, PEFT's conversion of
	// target_modules into target_parameters).
	Config Config
	// Modules are the adapted module paths, sorted.
	Modules []string
	// Parameters are the adapted whole weights (model.ParamTarget names), sorted.
	Parameters []string
	// Saved are the full weights trained next to the adapter (modules_to_save), sorted.
	Saved []string

	model    *model.Model
	base     model.Linear // the Linear the adapter wraps; nil means Dense
	targets  map[string]*target
	scale    float64
	training bool // dropout is active (the view TrainingDecoder returns)
	fast     bool // hand-written gradients (training graphs without gradient checkpointing)
	seed     int64
}

// Names of an adapted module's weights.
func loraA(module string) string { return module + ".lora_A.weight" }
func loraB(module string) string { return module + ".lora_B.weight" }

// isAdapterWeight reports whether a weight name belongs to a LoRA adapter.
func isAdapterWeight(name string) bool {
	return strings.HasSuffix(name, ".lora_A.weight") || strings.HasSuffix(name, ".lora_B.weight")
}

// Attach adds a freshly initialized adapter to m: A per cfg.Init (seeded), B zero, so the model's
// outputs are unchanged until training. m.Decoder.Linear is replaced by the adapter; compiled
// graphs of m are dropped because its weight list changed.
func Attach(m *model.Model, cfg Config, seed uint64) (*Adapter, error) {
	a, err := newAdapter(m, cfg)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x6c6f7261))
	weights := map[string]*tensors.Tensor{}
	for _, name := range a.targetNames() {
		t := a.targets[name]
		rows := t.rows()
		av := make([]float32, rows*t.in)
		for i := range av {
			if cfg.Init == InitGaussian {
				av[i] = float32(rng.NormFloat64() / float64(t.r))
			} else {
				bound := 1 / math.Sqrt(float64(t.in))
				av[i] = float32((2*rng.Float64() - 1) * bound)
			}
		}
		weights[loraA(name)] = tensors.FromFlatDataAndDimensions(av, rows, t.in)
		weights[loraB(name)] = tensors.FromShape(shapes.Make(dtypes.Float32, t.out, rows))
	}
	a.install(weights)
	return a, nil
}

// targetNames lists the adapted modules, then the adapted whole weights.
func (a *Adapter) targetNames() []string {
	return append(append([]string{}, a.Modules...), a.Parameters...)
}

// newAdapter validates cfg against m and resolves its modules; it changes nothing.
func newAdapter(m *model.Model, cfg Config) (*Adapter, error) {
	if m == nil || m.Decoder == nil {
		return nil, fmt.Errorf("lora: no model")
	}
	a, err := adapterFor(m.Config, m.Weights.Names(), m.Decoder.Linear, cfg)
	if err != nil {
		return nil, err
	}
	a.model = m
	return a, nil
}

// adapterFor resolves cfg's targets on a model of mc with the given weight names, wrapping base.
func adapterFor(mc *model.Config, weightNames []string, base model.Linear, cfg Config) (*Adapter, error) {
	cfg, err := cfg.forModel(mc)
	if err != nil {
		return nil, err
	}
	targets, err := cfg.resolve(mc)
	if err != nil {
		return nil, err
	}
	saved, err := cfg.savedModules(weightNames)
	if err != nil {
		return nil, err
	}
	for _, n := range weightNames {
		if isAdapterWeight(n) {
			return nil, fmt.Errorf("lora: the model already has adapter weight %s", n)
		}
	}
	a := &Adapter{Config: cfg, Saved: saved, base: base, targets: map[string]*target{}, scale: cfg.Scale()}
	for _, t := range targets {
		a.targets[t.name] = t
		if t.param == nil {
			a.Modules = append(a.Modules, t.name)
		} else {
			a.Parameters = append(a.Parameters, t.name)
		}
	}
	return a, nil
}

// install puts the adapter weights into the model and routes its linear layers (and whole-used
// weights) through a.
func (a *Adapter) install(weights map[string]*tensors.Tensor) {
	a.model.Finalize()
	for n, t := range weights {
		a.model.Weights[n] = t
	}
	a.model.Decoder.Linear = a
	if len(a.Parameters) > 0 {
		a.model.Decoder.WeightAdapter = a
	}
}

// Model returns the model the adapter is attached to.
func (a *Adapter) Model() *model.Model { return a.model }

// Scale is the update's factor s (α/r or α/√r) of targets without a rank or alpha pattern.
func (a *Adapter) Scale() float64 { return a.scale }

// Trainable implements train.Adapter: the optimizer updates the adapter's A and B and the
// modules_to_save weights. Everything else is frozen (no gradient, no optimizer state).
func (a *Adapter) Trainable(name string) bool {
	if isAdapterWeight(name) {
		return true
	}
	for _, s := range a.Saved {
		if s == name {
			return true
		}
	}
	return false
}

// Apply implements model.Linear.
func (a *Adapter) Apply(p model.Params, module string, x *Node) *Node {
	wa, wb := p[loraA(module)], p[loraB(module)]
	t := a.targets[module]
	adapted := t != nil && t.param == nil && wa != nil && wb != nil // weights not fed: the base alone
	if a.fast && useLayoutAwareGradients(x) && !a.Trainable(module+".weight") {
		if w, bias, ok := a.frozenBase(p, module, x); ok {
			if !adapted {
				return frozenLoRALinear(x, w, bias, nil, nil, 0)
			}
			if a.Config.Dropout > 0 {
				// Dropout only feeds the adapter; the fused layer takes one input, so the
				// base and the adapter go separately.
				y := frozenLoRALinear(x, w, bias, nil, nil, 0)
				return Add(y, frozenLoRALinear(a.dropout(x), nil, nil, ConvertDType(wa, x.DType()), ConvertDType(wb, x.DType()), t.scale))
			}
			return frozenLoRALinear(x, w, bias, ConvertDType(wa, x.DType()), ConvertDType(wb, x.DType()), t.scale)
		}
	}
	y := a.baseLinear().Apply(p, module, x)
	if !adapted {
		return y
	}
	h := x
	if a.training && a.Config.Dropout > 0 {
		h = a.dropout(h)
	}
	wa, wb = ConvertDType(wa, x.DType()), ConvertDType(wb, x.DType())
	h = DotGeneral(h, []int{h.Rank() - 1}, nil, wa, []int{1}, nil) // [..., r]
	h = DotGeneral(h, []int{h.Rank() - 1}, nil, wb, []int{1}, nil) // [..., out]
	return Add(y, MulScalar(h, t.scale))
}

// AdaptWeight implements model.WeightAdapter: W + s·ΔW for an adapted whole weight, with ΔW =
// B·A for a matrix and, for stacked experts, ΔW[e] = Σ_k B[:, k·E+e] ⊗ A[e·r+k, :] — PEFT's
// ParamWrapper (A [r·E, in] read as [E, r, in], B [out, r·E] as [out, r, E]).
func (a *Adapter) AdaptWeight(p model.Params, name string, w *Node) *Node {
	t := a.targets[name]
	wa, wb := p[loraA(name)], p[loraB(name)]
	if t == nil || t.param == nil || wa == nil || wb == nil {
		return w
	}
	wa, wb = ConvertDType(wa, dtypes.Float32), ConvertDType(wb, dtypes.Float32)
	var delta *Node
	if t.experts == 0 {
		delta = DotGeneral(wb, []int{1}, nil, wa, []int{0}, nil) // [out, in]
	} else {
		e := t.experts
		av := Reshape(wa, e, t.r, t.in)
		bv := TransposeAllAxes(Reshape(wb, t.out, t.r, e), 2, 0, 1)        // [E, out, r]
		delta = DotGeneral(bv, []int{2}, []int{0}, av, []int{1}, []int{0}) // [E, out, in]
	}
	return Add(w, ConvertDType(MulScalar(delta, t.scale), w.DType()))
}

// PlainWeight implements model.PlainLinear: the weight of a module the adapter leaves alone, when
// its base computes it plainly (nil for adapted modules).
func (a *Adapter) PlainWeight(p model.Params, module string) *Node {
	if a.targets[module] != nil {
		return nil
	}
	return model.PlainWeightOf(a.base, p, module)
}

// frozenBase returns a frozen base layer's weight [out, in] and bias in x's dtype when the base
// is Dense or NF4 (whose weight it dequantizes); ok is false for other Linears.
func (a *Adapter) frozenBase(p model.Params, module string, x *Node) (w, bias *Node, ok bool) {
	switch base := a.base.(type) {
	case nil:
		w = p[module+".weight"]
	case *NF4Linear:
		w = base.weight(p, module, x)
		if w == nil {
			w = p[module+".weight"]
		}
	default:
		return nil, nil, false
	}
	if w == nil {
		return nil, nil, false
	}
	w = StopGradient(ConvertDType(w, x.DType()))
	if b := p[module+".bias"]; b != nil {
		bias = ConvertDType(b, x.DType())
	}
	return w, bias, true
}

func (a *Adapter) baseLinear() model.Linear {
	if a.base == nil {
		return model.Dense{}
	}
	return a.base
}

// dropout zeroes each input element with probability Dropout and scales the rest by 1/(1-p).
// The random state is derived from the graph's inputs, so each batch draws its own mask while
// a given batch always gets the same one (graphs carry no RNG state between steps).
func (a *Adapter) dropout(x *Node) *Node {
	g := x.Graph()
	// Fingerprint of the input: the wrapping sum of its float32 bit patterns.
	bits := Bitcast(ConvertDType(StopGradient(x), dtypes.Float32), dtypes.Uint32)
	fingerprint := ConvertDType(ReduceAllSum(ConvertDType(bits, dtypes.Uint64)), dtypes.Uint64)
	state := Add(RNGStateFromSeedForGraph(g, a.seed), fingerprint)
	_, u := RandomUniform(state, shapes.Make(dtypes.Float32, x.Shape().Dimensions...))
	u = ConvertDType(u, x.DType())
	keep := GreaterOrEqual(u, Scalar(g, u.DType(), a.Config.Dropout))
	return Where(keep, DivScalar(x, 1-a.Config.Dropout), ZerosLike(x))
}

// BaseDecoder implements train.Adapter: a decoder that computes the base model only, with the
// same weights and no copy of them: DPO's reference policy (PEFT's disable_adapter).
// modules_to_save weights are shared, so they carry their trained values.
func (a *Adapter) BaseDecoder() *model.Decoder {
	d := *a.model.Decoder
	d.Linear, d.WeightAdapter = a.base, nil
	return &d
}

// TrainingDecoder implements train.Adapter: dec (a copy of the model's decoder, as a training
// graph builds it) with the adapter in training mode — lora_dropout with masks drawn from seed
// and, when dec asks for hand-written gradients (Decoder.FastGradients, without gradient
// checkpointing), the fused frozen-base-plus-adapter layer. A decoder that does not run this
// adapter is returned as is; the model's own decoder keeps both off for evaluation and generation.
func (a *Adapter) TrainingDecoder(dec *model.Decoder, seed uint64) *model.Decoder {
	if dec.Linear != model.Linear(a) {
		return dec
	}
	t := *a
	// Like the decoder's own hand-written gradients, these stay off under gradient
	// checkpointing (recomputed layers rebuild their forward nodes).
	t.training, t.seed, t.fast = true, int64(seed), dec.FastGradients && !dec.GradientCheckpointing
	d := *dec
	d.Linear = &t
	if d.WeightAdapter != nil {
		d.WeightAdapter = &t
	}
	return &d
}

// Detach removes the adapter's weights from the model and restores the Linear it wrapped.
func (a *Adapter) Detach() {
	a.model.Finalize()
	for _, name := range a.targetNames() {
		delete(a.model.Weights, loraA(name))
		delete(a.model.Weights, loraB(name))
	}
	if a.model.Decoder.Linear == model.Linear(a) {
		a.model.Decoder.Linear = a.base
	}
	if a.model.Decoder.WeightAdapter == model.WeightAdapter(a) {
		a.model.Decoder.WeightAdapter = nil
	}
}

// TrainableParameters counts the adapter's trainable values (PEFT's print_trainable_parameters).
func (a *Adapter) TrainableParameters() int {
	n := 0
	for name, t := range a.model.Weights {
		if a.Trainable(name) {
			n += t.Shape().Size()
		}
	}
	return n
}

// Disabled returns a decoder computing the base model of dec with the adapter switched off,
// sharing dec's weights (an Objective's way to the reference policy: DPO with LoRA runs its
// reference pass on Disabled(dec) under StopGradient). ok is false when dec has no adapter.
func Disabled(dec *model.Decoder) (base *model.Decoder, ok bool) {
	a, isAdapter := dec.Linear.(*Adapter)
	if !isAdapter {
		return dec, false
	}
	d := *dec
	d.Linear, d.WeightAdapter = a.base, nil
	d.FastGradients = false // a reference pass needs no gradient
	return &d, true
}
