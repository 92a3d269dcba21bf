package model

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
)

// Mixtral is Mistral's decoder with a sparse mixture-of-experts block in place of the MLP, as
// transformers' MixtralSparseMoeBlock computes it: router logits h·Gᵀ, softmax in float32, the
// top num_experts_per_tok experts of each token, their probabilities renormalized to sum to 1,
// and the output Σ_j w_j · w2_e(act(w1_e·h) ⊙ w3_e·h) over the chosen experts e. Checkpoints keep
// Mixtral's per-expert names (block_sparse_moe.experts.N.w1/w2/w3, block_sparse_moe.gate), the
// layout transformers' save_pretrained writes; graphs see the experts stacked as transformers 5
// holds them in memory (gate_up_proj [E, 2I, H] with w1's rows first, down_proj [E, H, I]), the
// shapes PEFT's target_parameters adapt.
//
// Tokens are routed (routeExperts), so a layer costs about top-k experts per token, not all of
// them. The router's load-balancing loss (transformers' load_balancing_loss_func) comes out of
// LogitsAndAuxLoss.

// moeModule is the MoE block's module name under each layer.
const moeModule = "block_sparse_moe"

// moeSpecs adds an MoE block's router and experts.
func moeSpecs(c *Config, a *specAdder, module string) {
	h, inter := c.HiddenSize, c.IntermediateSize
	a.add(module+".gate.weight", KindMatrix, c.NumLocalExperts, h)
	for e := 0; e < c.NumLocalExperts; e++ {
		prefix := fmt.Sprintf("%s.experts.%d.", module, e)
		a.add(prefix+"w1.weight", KindMatrix, inter, h)
		a.add(prefix+"w2.weight", KindMatrix, h, inter)
		a.add(prefix+"w3.weight", KindMatrix, inter, h)
	}
}

// ParamTarget is a weight the decoder uses whole rather than through Linear, passed through
// Decoder.WeightAdapter: what PEFT adapts as a target_parameters entry.
type ParamTarget struct {
	// Name is the target in graphs: "model.layers.3.block_sparse_moe.gate.weight" (the router),
	// "model.layers.3.block_sparse_moe.experts.gate_up_proj" or "….experts.down_proj".
	Name string
	// Module is the path of the transformers 5 module holding the weight in memory
	// ("model.layers.3.mlp.gate", the router; "model.layers.3.mlp.experts") and Param the
	// parameter's name on it ("weight", "gate_up_proj", "down_proj"): PEFT's key is
	// Module + "." + Param. Targets of one module are listed in its parameter order.
	Module, Param string
	// Experts is the leading axis of stacked expert weights, 0 for a plain matrix.
	Experts int
	// Out and In are the shape of each expert's matrix (of the matrix itself when Experts is 0).
	Out, In int
}

// ParamTargets lists the model's whole-used weights, by layer: none for dense families.
func (c *Config) ParamTargets() []ParamTarget {
	if !c.IsMoE() {
		return nil
	}
	var out []ParamTarget
	e, h, inter := c.NumLocalExperts, c.HiddenSize, c.IntermediateSize
	for i := 0; i < c.NumHiddenLayers; i++ {
		m := fmt.Sprintf("model.layers.%d.%s.", i, moeModule)
		hf := fmt.Sprintf("model.layers.%d.mlp.", i)
		out = append(out,
			ParamTarget{Name: m + "gate.weight", Module: hf + "gate", Param: "weight", Out: e, In: h},
			ParamTarget{Name: m + "experts.gate_up_proj", Module: hf + "experts", Param: "gate_up_proj", Experts: e, Out: 2 * inter, In: h},
			ParamTarget{Name: m + "experts.down_proj", Module: hf + "experts", Param: "down_proj", Experts: e, Out: h, In: inter})
	}
	return out
}

// IsExpertWeight reports whether a weight name belongs to an MoE block's router or experts.
func IsExpertWeight(name string) bool { return strings.Contains(name, "."+moeModule+".") }

// sparseMoE is MixtralSparseMoeBlock for x [batch, seq, hidden].
func (d *Decoder) sparseMoE(p Params, module string, x *Node, ctx *attentionContext) *Node {
	cfg := d.Config
	batch, seq, hidden := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2)
	tokens := Reshape(x, batch*seq, hidden)
	router := d.adaptWeight(p, module+".gate.weight", param(p, module+".gate.weight"))
	logits := DotGeneral(tokens, []int{1}, nil, router, []int{1}, nil) // [tokens, experts]
	ctx.routerLogits = append(ctx.routerLogits, logits)
	probs := Softmax(ConvertDType(logits, dtypes.Float32), -1)
	_, choice := TopK(StopGradient(probs), cfg.NumExpertsPerTok, -1) // [tokens, k] int32
	weights := takeAlongLastAxis(probs, choice)
	weights = Div(weights, ReduceAndKeep(weights, ReduceSum, -1))

	experts := cfg.NumLocalExperts
	gateUp := make([]*Node, experts)
	down := make([]*Node, experts)
	for e := range experts {
		prefix := fmt.Sprintf("%s.experts.%d.", module, e)
		gateUp[e] = InsertAxes(Concatenate([]*Node{param(p, prefix+"w1.weight"), param(p, prefix+"w3.weight")}, 0), 0)
		down[e] = InsertAxes(param(p, prefix+"w2.weight"), 0)
	}
	stackedGateUp := d.adaptWeight(p, module+".experts.gate_up_proj", Concatenate(gateUp, 0))
	stackedDown := d.adaptWeight(p, module+".experts.down_proj", Concatenate(down, 0))
	act, _ := activationByName(cfg.Activation())
	out := routeExperts(tokens, choice, weights, stackedGateUp, stackedDown, act)
	return Reshape(out, batch, seq, hidden)
}

// takeAlongLastAxis picks x[t, idx[t, j]] for x [T, n] and idx [T, k]: [T, k]. The gradient
// flows to x.
func takeAlongLastAxis(x, idx *Node) *Node {
	t, k := idx.Shape().Dim(0), idx.Shape().Dim(1)
	rows := Iota(x.Graph(), shapes.Make(dtypes.Int32, t, k, 1), 0)
	return Gather(x, Concatenate([]*Node{rows, Reshape(idx, t, k, 1)}, -1))
}

// routeExperts computes Σ_j w[t,j] · expert_{e[t,j]}(x[t]) for tokens x [T, H], chosen experts
// e [T, k] (int32) and weights w [T, k] (float32), with gateUp [E, 2I, H] and down [E, H, I], at
// about the cost of T·k expert rows instead of T·E.
//
// Static shapes rule out one matmul per expert over a data-dependent number of tokens, so the
// T·k assignments are sorted by expert and laid out in blocks of B rows, each expert's rows
// starting a new block: at most (T·k + E·(B−1)) / B blocks, whatever the routing. Every block
// gathers its expert's weights and runs one batched matmul; each token then gathers its k output
// rows. The sort, the block layout and the gathers are plain XLA ops that the Go backend also
// runs (no dynamic shapes, no DynamicSlice). The padding rows cost at most E·(B−1) extra rows;
// B is a power of two near a quarter of the mean rows per expert (moeBlockSize).
func routeExperts(x, choice, weights, gateUp, down *Node, act func(*Node) *Node) *Node {
	g := x.Graph()
	tokens, hidden := x.Shape().Dim(0), x.Shape().Dim(1)
	k := choice.Shape().Dim(1)
	experts, inter := gateUp.Shape().Dim(0), down.Shape().Dim(2)
	assigned := tokens * k
	block := moeBlockSize(assigned, experts)
	blocks := (assigned + experts*(block-1)) / block
	slots := blocks * block
	i32 := func(v int) *Node { return Scalar(g, dtypes.Int32, v) }

	// Sort the assignments by expert, stably: key = expert·A + assignment.
	flat := Reshape(ConvertDType(choice, dtypes.Int32), assigned)
	keys := Add(Mul(flat, i32(assigned)), Iota(g, shapes.Make(dtypes.Int32, assigned), 0))
	sorted := Sort(keys, 0, true)
	sortedExpert := Div(sorted, i32(assigned))
	sortedAssignment := Sub(sorted, Mul(sortedExpert, i32(assigned)))

	// Rows per expert, where each expert's rows start unpadded and padded to blocks.
	expertIDs := Iota(g, shapes.Make(dtypes.Int32, 1, experts), 1)
	counts := ReduceSum(ConvertDType(Equal(Reshape(flat, assigned, 1), expertIDs), dtypes.Float32), 0) // [E]
	expertBlocks := Floor(DivScalar(AddScalar(counts, float64(block-1)), float64(block)))
	unpaddedStart := exclusiveCumSum(counts)
	blockStart := exclusiveCumSum(expertBlocks)
	at := func(v *Node) *Node { return Gather(v, Reshape(sortedExpert, assigned, 1)) }
	position := ConvertDType(Iota(g, shapes.Make(dtypes.Int32, assigned), 0), dtypes.Float32)
	slot := ConvertDType(Add(Sub(position, at(unpaddedStart)), MulScalar(at(blockStart), float64(block))), dtypes.Int32)

	// Each assignment's slot, and each slot's token (empty slots read token 0; nothing reads them).
	slotOf := Scatter(Reshape(sortedAssignment, assigned, 1), slot, shapes.Make(dtypes.Int32, assigned), false, true)
	tokenOf := Scatter(Reshape(slot, assigned, 1), AddScalar(Div(sortedAssignment, i32(k)), 1),
		shapes.Make(dtypes.Int32, slots), false, true)
	tokenOf = Max(Sub(tokenOf, i32(1)), ZerosLike(tokenOf))
	// Each block's expert: the last expert whose first block is at or before it.
	blockIdx := ConvertDType(Iota(g, shapes.Make(dtypes.Int32, blocks, 1), 0), dtypes.Float32)
	started := ReduceSum(ConvertDType(LessOrEqual(Reshape(blockStart, 1, experts), blockIdx), dtypes.Int32), 1)
	blockExpert := Max(Sub(started, i32(1)), ZerosLike(started))

	xs := Reshape(Gather(x, Reshape(tokenOf, slots, 1)), blocks, block, hidden)
	blockWeights := func(w *Node) *Node { return Gather(w, Reshape(blockExpert, blocks, 1)) }
	hGateUp := DotGeneral(xs, []int{2}, []int{0}, blockWeights(gateUp), []int{2}, []int{0}) // [blocks, B, 2I]
	gate := SliceAxis(hGateUp, 2, AxisRange(0, inter))
	up := SliceAxis(hGateUp, 2, AxisRangeToEnd(inter))
	y := DotGeneral(Mul(act(gate), up), []int{2}, []int{0}, blockWeights(down), []int{2}, []int{0}) // [blocks, B, H]

	picked := Reshape(Gather(Reshape(y, slots, hidden), Reshape(slotOf, assigned, 1)), tokens, k, hidden)
	// transformers scales each expert's rows by its float32 weight, casts back and sums.
	scaled := ConvertDType(Mul(ConvertDType(picked, dtypes.Float32), InsertAxes(weights, -1)), x.DType())
	return ReduceSum(scaled, 1)
}

// moeBlockSize is the rows of a routed block: the largest power of two at most a quarter of the
// mean rows per expert, within [1, 256]. Padding costs at most E·(B−1) rows (under a quarter of
// the assignments), and the per-block weight gathers about 5 copies of the experts; on the Go
// backend a quarter measured faster than an eighth or a half (docs/PERFORMANCE.md).
func moeBlockSize(assigned, experts int) int {
	target := assigned / (4 * experts)
	b := 1
	for b*2 <= target && b < 256 {
		b *= 2
	}
	return b
}

// exclusiveCumSum of v [n]: out[j] = Σ_{i<j} v[i], as a product with a strictly upper
// triangular matrix (n is the number of experts: small).
func exclusiveCumSum(v *Node) *Node {
	n := v.Shape().Dim(0)
	rows := Iota(v.Graph(), shapes.Make(dtypes.Int32, n, n), 0)
	cols := Iota(v.Graph(), shapes.Make(dtypes.Int32, n, n), 1)
	upper := ConvertDType(LessThan(rows, cols), v.DType())
	return DotGeneral(v, []int{0}, nil, upper, []int{0}, nil)
}

// loadBalancingLoss is transformers' load_balancing_loss_func over the router logits of every
// layer ([tokens, experts] each): E · Σ_e f_e · P_e, with f_e the fraction of top-k assignments
// and P_e the mean router probability of expert e over all layers' tokens, padding (mask 0)
// excluded. Only P carries a gradient.
func loadBalancingLoss(routerLogits []*Node, mask *Node, topK int) *Node {
	g := routerLogits[0].Graph()
	tokens, experts := routerLogits[0].Shape().Dim(0), routerLogits[0].Shape().Dim(1)
	weight := Ones(g, shapes.Make(dtypes.Float32, tokens, 1))
	if mask != nil {
		weight = Reshape(ConvertDType(NotEqual(mask, ZerosLike(mask)), dtypes.Float32), tokens, 1)
	}
	expertIDs := Iota(g, shapes.Make(dtypes.Int32, 1, 1, experts), 2)
	var assignedSum, probSum *Node
	for _, logits := range routerLogits {
		probs := Softmax(ConvertDType(logits, dtypes.Float32), -1)
		_, choice := TopK(StopGradient(probs), topK, -1)
		onehot := ConvertDType(Equal(InsertAxes(choice, -1), expertIDs), dtypes.Float32) // [T, k, E]
		assigned := ReduceSum(Mul(ReduceSum(onehot, 1), weight), 0)                      // [E]
		prob := ReduceSum(Mul(probs, weight), 0)
		if assignedSum == nil {
			assignedSum, probSum = assigned, prob
		} else {
			assignedSum, probSum = Add(assignedSum, assigned), Add(probSum, prob)
		}
	}
	rows := MulScalar(ReduceAllSum(weight), float64(len(routerLogits)))
	f := Div(StopGradient(assignedSum), rows)
	pe := Div(probSum, rows)
	return MulScalar(ReduceAllSum(Mul(f, pe)), float64(experts))
}

// LogitsAndAuxLoss returns Logits and, when RouterAuxLossCoef is set on a mixture-of-experts
// model, its routers' load-balancing loss (unweighted, padding excluded by b.AttentionMask);
// aux is nil otherwise. Training objectives add RouterAuxLossCoef · aux to their loss, as
// transformers' MixtralForCausalLM does.
func (d *Decoder) LogitsAndAuxLoss(p Params, b Batch) (logits, aux *Node) {
	hidden, aux := d.HiddenAndAuxLoss(p, b)
	return d.Head(p, hidden), aux
}

// HiddenAndAuxLoss is LogitsAndAuxLoss before the LM head: the final hidden states (Hidden), for
// CausalLMHeadLoss.
func (d *Decoder) HiddenAndAuxLoss(p Params, b Batch) (hidden, aux *Node) {
	hidden, ctx := d.hidden(p, b)
	if d.RouterAuxLossCoef == 0 || len(ctx.routerLogits) == 0 {
		return hidden, nil
	}
	return hidden, loadBalancingLoss(ctx.routerLogits, b.AttentionMask, d.Config.NumExpertsPerTok)
}

// AddAuxLoss adds a LogitsAndAuxLoss aux term to an objective's loss summed over count units:
// sum + RouterAuxLossCoef·aux·count, so the mean over the units gains RouterAuxLossCoef·aux, the
// term TRL adds to each micro-batch's loss; metrics get aux as "aux_loss" (summed over the units
// like the other metrics). With several micro-batches per step, the engine's division by all of
// their units weighs each micro-batch's aux by its share of the units (TRL averages them evenly;
// the two agree when micro-batches hold equally many units). A nil aux returns sum unchanged.
func (d *Decoder) AddAuxLoss(aux, sum, count *Node, metrics map[string]*Node) *Node {
	if aux == nil {
		return sum
	}
	aux = ConvertDType(aux, sum.DType())
	weighted := Mul(aux, ConvertDType(count, sum.DType()))
	if metrics != nil {
		metrics["aux_loss"] = StopGradient(weighted)
	}
	return Add(sum, MulScalar(weighted, d.RouterAuxLossCoef))
}
