package dpo

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
)

// LossType names one of TRL's DPO losses (DPOConfig.loss_type).
type LossType string

// The loss types of TRL 1.16's DPOTrainer. Each maps the policy's and reference's summed
// completion log-probs of a pair to a per-pair loss, as TRL's DPOTrainer.dpo_loss computes it. In
// the comments, ρ_c and ρ_r are the chosen and rejected log-ratios (policy − reference log-probs),
// Δ = ρ_c − ρ_r, and Δ_avg the same over per-token average log-probs.
const (
	LossSigmoid     LossType = "sigmoid"      // DPO: −log σ(βΔ)
	LossHinge       LossType = "hinge"        // SLiC: relu(1 − βΔ)
	LossIPO         LossType = "ipo"          // (Δ_avg − 1/(2β))², Δ over per-token averages
	LossExoPair     LossType = "exo_pair"     // EXO; needs label_smoothing > 0
	LossNCAPair     LossType = "nca_pair"     // NCA
	LossRobust      LossType = "robust"       // rDPO with label_smoothing ε
	LossBCOPair     LossType = "bco_pair"     // −log σ(βρ_c) − log σ(−βρ_r)
	LossSPPOHard    LossType = "sppo_hard"    // (ρ_c − 1/(2β))² + (ρ_r + 1/(2β))²
	LossAOT         LossType = "aot"          // AOT paired: sorted log-ratios across the batch
	LossAOTUnpaired LossType = "aot_unpaired" // AOT unpaired: sorted reward log-ratios across the batch
	LossAPOZero     LossType = "apo_zero"     // APO-zero
	LossAPODown     LossType = "apo_down"     // APO-down
	LossDiscoPOP    LossType = "discopop"     // DiscoPOP with discopop_tau
	LossSFT         LossType = "sft"          // NLL of the chosen completions (MPO's SFT term)
	LossSigmoidNorm LossType = "sigmoid_norm" // −log σ(βΔ_avg)
)

// LossTypes lists every supported loss type, in TRL's order.
var LossTypes = []LossType{LossSigmoid, LossHinge, LossIPO, LossExoPair, LossNCAPair, LossRobust, LossBCOPair, LossSPPOHard, LossAOT, LossAOTUnpaired,
	LossAPOZero, LossAPODown, LossDiscoPOP, LossSFT, LossSigmoidNorm}

// ParseLossTypes turns names (a recipe's loss_type, one or a list) into loss types, rejecting
// unknown names with the list of valid ones.
func ParseLossTypes(names ...string) ([]LossType, error) {
	out := make([]LossType, len(names))
	for i, n := range names {
		lt := LossType(strings.TrimSpace(n))
		if !slices.Contains(LossTypes, lt) {
			return nil, fmt.Errorf("unknown loss_type %q; valid: %s", n, validLossTypes())
		}
		out[i] = lt
	}
	return out, nil
}

func validLossTypes() string {
	s := make([]string, len(LossTypes))
	for i, lt := range LossTypes {
		s[i] = string(lt)
	}
	return strings.Join(s, ", ")
}

// LossConfig is the part of DPOConfig that shapes the loss.
type LossConfig struct {
	// Beta is β (beta; TRL's default 0.1, which the trainers use for 0); it must be positive.
	Beta float64
	// LossType is one loss or several combined with LossWeights (default: sigmoid).
	LossType []LossType
	// LossWeights weigh LossType's losses (nil: 1 each); same length as LossType.
	LossWeights []float64
	// LabelSmoothing is ε of robust, exo_pair, aot and aot_unpaired (TRL default 0).
	LabelSmoothing float64
	// DiscopopTau is τ of discopop (TRL default 0.05; 0 means the default).
	DiscopopTau float64
}

// DefaultLossConfig returns TRL's DPOConfig defaults: β = 0.1, sigmoid, τ = 0.05.
func DefaultLossConfig() LossConfig {
	return LossConfig{Beta: DefaultBeta, LossType: []LossType{LossSigmoid}, DiscopopTau: 0.05}
}

// checkBeta rejects a β (DPO's, or ORPO's λ) that is not positive and finite, naming field.
func checkBeta(beta float64, field string) error {
	if !(beta > 0) || math.IsInf(beta, 0) {
		return fmt.Errorf("beta must be positive and finite, got %g (%s)", beta, field)
	}
	return nil
}

// Validate checks the loss configuration as given, as TRL does, with the list of valid loss types
// on an unknown one. (Trainer.Train first fills a zero Beta with DefaultBeta.)
func (c LossConfig) Validate() error {
	if err := checkBeta(c.Beta, "LossConfig.Beta"); err != nil {
		return err
	}
	for _, lt := range c.LossType {
		if !slices.Contains(LossTypes, lt) {
			return fmt.Errorf("unknown loss_type %q; valid: %s", lt, validLossTypes())
		}
	}
	if c.LossWeights != nil && len(c.LossWeights) != len(c.lossTypes()) {
		return fmt.Errorf("loss_weights has %d values for %d loss types %v", len(c.LossWeights), len(c.lossTypes()), c.lossTypes())
	}
	if slices.Contains(c.LossType, LossExoPair) && c.LabelSmoothing == 0 {
		return fmt.Errorf("loss_type exo_pair needs label_smoothing > 0 (the EXO paper recommends 1e-3)")
	}
	if c.LabelSmoothing < 0 || c.LabelSmoothing >= 1 {
		return fmt.Errorf("label_smoothing must be in [0, 1), got %g", c.LabelSmoothing)
	}
	if slices.Contains(c.LossType, LossRobust) && c.LabelSmoothing >= 0.5 {
		// TRL only warns; at 0.5 the robust loss divides by zero, above it flips sign.
		return fmt.Errorf("loss_type robust needs label_smoothing in [0, 0.5), got %g", c.LabelSmoothing)
	}
	return nil
}

func (c LossConfig) lossTypes() []LossType {
	if len(c.LossType) == 0 {
		return []LossType{LossSigmoid}
	}
	return c.LossType
}

func (c LossConfig) weights() []float64 {
	if c.LossWeights != nil {
		return c.LossWeights
	}
	w := make([]float64, len(c.lossTypes()))
	for i := range w {
		w[i] = 1
	}
	return w
}

func (c LossConfig) tau() float64 {
	if c.DiscopopTau == 0 {
		return 0.05
	}
	return c.DiscopopTau
}

// pairScores is what every loss reads, per pair ([n] nodes): the policy's and reference's summed
// completion log-probs, the completion lengths, and the SFT term (the mean NLL of the chosen
// completion tokens of the whole micro-batch, a scalar).
type pairScores struct {
	chosen, rejected, refChosen, refRejected *Node
	chosenLen, rejectedLen                   *Node
	sftNLL                                   *Node
}

// lossTerm returns one loss type's per-pair loss [n], transcribed from TRL 1.16's
// DPOTrainer._compute_loss (f_divergence_type reverse_kl, no ld_alpha, no WPO weighting).
func (c LossConfig) lossTerm(lt LossType, s pairScores) *Node {
	beta, ls := c.Beta, c.LabelSmoothing
	chosenRatio := Sub(s.chosen, s.refChosen)
	rejectedRatio := Sub(s.rejected, s.refRejected)
	delta := Sub(chosenRatio, rejectedRatio)
	bd := MulScalar(delta, beta)
	switch lt {
	case LossSigmoid:
		return Neg(logSigmoid(bd))
	case LossHinge:
		return MaxScalar(OneMinus(bd), 0.0)
	case LossIPO:
		avg := Sub(Div(chosenRatio, MaxScalar(s.chosenLen, 1)), Div(rejectedRatio, MaxScalar(s.rejectedLen, 1)))
		return Square(AddScalar(avg, -1/(2*beta)))
	case LossExoPair:
		logPw, logPl := math.Log1p(-ls), math.Log(ls)
		return Add(Mul(Sigmoid(bd), AddScalar(logSigmoid(bd), -logPw)),
			Mul(Sigmoid(Neg(bd)), AddScalar(logSigmoid(Neg(bd)), -logPl)))
	case LossNCAPair:
		cr, rr := MulScalar(chosenRatio, beta), MulScalar(rejectedRatio, beta)
		return Sub(Sub(Neg(logSigmoid(cr)), MulScalar(logSigmoid(Neg(cr)), 0.5)), MulScalar(logSigmoid(Neg(rr)), 0.5))
	case LossRobust:
		clean := MulScalar(logSigmoid(bd), -(1 - ls))
		flipped := MulScalar(logSigmoid(Neg(bd)), -ls)
		return DivScalar(Sub(clean, flipped), 1-2*ls)
	case LossBCOPair:
		return Sub(Neg(logSigmoid(MulScalar(chosenRatio, beta))), logSigmoid(Neg(MulScalar(rejectedRatio, beta))))
	case LossSPPOHard:
		return Add(Square(AddScalar(chosenRatio, -0.5/beta)), Square(AddScalar(rejectedRatio, 0.5/beta)))
	case LossAOT:
		d := Sub(sortAscending(Sub(s.chosen, s.rejected)), sortAscending(Sub(s.refChosen, s.refRejected)))
		return smoothedSigmoid(MulScalar(d, beta), ls)
	case LossAOTUnpaired:
		d := Sub(sortAscending(chosenRatio), sortAscending(rejectedRatio))
		return smoothedSigmoid(MulScalar(d, beta), ls)
	case LossAPOZero:
		return Add(OneMinus(Sigmoid(MulScalar(chosenRatio, beta))), Sigmoid(MulScalar(rejectedRatio, beta)))
	case LossAPODown:
		return Add(Sigmoid(MulScalar(chosenRatio, beta)), OneMinus(Sigmoid(bd)))
	case LossDiscoPOP:
		modulation := Sigmoid(DivScalar(bd, c.tau()))
		return Add(Mul(Neg(logSigmoid(bd)), OneMinus(modulation)), Mul(Exp(Neg(bd)), modulation))
	case LossSFT:
		return BroadcastToShape(s.sftNLL, s.chosen.Shape())
	case LossSigmoidNorm:
		avg := Sub(Div(chosenRatio, MaxScalar(s.chosenLen, 1)), Div(rejectedRatio, MaxScalar(s.rejectedLen, 1)))
		return Neg(logSigmoid(MulScalar(avg, beta)))
	}
	panic(fmt.Sprintf("dpo: unknown loss type %q", lt)) // Validate rejects it before any graph is built
}

// smoothedSigmoid is −log σ(x)(1−ε) − log σ(−x)ε.
func smoothedSigmoid(x *Node, eps float64) *Node {
	return Sub(MulScalar(Neg(logSigmoid(x)), 1-eps), MulScalar(logSigmoid(Neg(x)), eps))
}

// logSigmoid is log σ(x) = −softplus(−x), stable for large |x|.
func logSigmoid(x *Node) *Node {
	return Neg(Softplus(Neg(x)))
}

// sortAscending sorts a [n] vector, differentiably: the value of rank k is the sum of the
// values whose rank is k (ranks are constants; ties broken by index, as a stable sort does).
// n is a batch size, so the n² comparisons are cheap; GoMLX's Sort has no gradient.
func sortAscending(x *Node) *Node {
	n := x.Shape().Dim(0)
	if n == 1 {
		return x
	}
	g := x.Graph()
	xs := StopGradient(x)
	xi := InsertAxes(xs, 1) // [n,1]: element i
	xj := InsertAxes(xs, 0) // [1,n]: element j
	idx := Iota(g, shapes.Make(x.DType(), n, n), 0)
	jdx := Iota(g, shapes.Make(x.DType(), n, n), 1)
	before := LogicalOr(LessThan(BroadcastToDims(xj, n, n), BroadcastToDims(xi, n, n)),
		LogicalAnd(Equal(BroadcastToDims(xj, n, n), BroadcastToDims(xi, n, n)), LessThan(jdx, idx)))
	rank := ReduceSum(ConvertDType(before, x.DType()), 1) // [n]: rank of element i
	k := Iota(g, shapes.Make(x.DType(), n, n), 0)         // [k, i]
	onehot := ConvertDType(Equal(k, BroadcastToDims(InsertAxes(rank, 0), n, n)), x.DType())
	return ReduceSum(Mul(onehot, BroadcastToDims(InsertAxes(x, 0), n, n)), 1)
}
