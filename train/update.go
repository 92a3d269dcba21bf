package train

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"

	"handbook/model"
)

// Mixed precision. A trainable weight stored in a 16-bit dtype (a model loaded with
// dtype: bfloat16) is trained through a float32 master copy, as DeepSpeed's bf16 optimizer and
// PyTorch AMP with float32 parameters do: the model keeps the 16-bit working copy the decoder
// computes with, the gradients of that copy are accumulated, reduced and clipped in float32, and
// the optimizer updates the master (its state is float32 too) and writes the working copy back,
// rounded. Per trainable parameter that is 2 (working copy) + 4 (float32 gradient) + 4 (master)
// + the optimizer's float32 state bytes. Weights stored in float32 (LoRA adapters, float32
// models) are their own master.

// needsMaster says whether a weight of this dtype trains through a float32 master copy.
func needsMaster(dtype dtypes.DType) bool {
	return dtype.IsFloat() && dtype.Size() < 4
}

// float32Copy returns t's values as a new float32 tensor (exact for 16-bit floats).
func float32Copy(t *tensors.Tensor) (*tensors.Tensor, error) {
	vals, err := model.Float32Values(t)
	if err != nil {
		return nil, err
	}
	return tensors.FromFlatDataAndDimensions(vals, t.Shape().Dimensions...), nil
}

// updateGroup is a set of trainable weights the optimizer updates in one graph call. The update
// is split so that, as XLA does not alias a donated input with an output here (go-xla compiles no
// input/output aliases), only one group's old and new parameters and optimizer state are alive
// together rather than the whole model's: the update's peak is the model states plus the largest
// group's, not twice the model states.
type updateGroup struct {
	// key names the group's compiled graph by what it bakes in (member names up to the layer
	// index, which decide weight decay, and master copies): every decoder layer shares it, and
	// GoMLX compiles it once per input shapes.
	key     string
	members []int // indices into the trainable weights
}

// updateGroups splits the trainable weights by decoder layer ("model.layers.N."); every other
// weight (embeddings, final norm, LM head) is a group of its own. masters[i] says whether weight
// i trains through a float32 master.
func updateGroups(names []string, masters []bool) []updateGroup {
	var groups []updateGroup
	byPrefix := map[string]int{}
	for i, n := range names {
		prefix, suffix := n, n
		if rest, ok := strings.CutPrefix(n, "model.layers."); ok {
			if dot := strings.IndexByte(rest, '.'); dot > 0 {
				prefix, suffix = "model.layers."+rest[:dot+1], rest[dot+1:]
			}
		}
		g, ok := byPrefix[prefix]
		if !ok {
			g = len(groups)
			byPrefix[prefix] = g
			groups = append(groups, updateGroup{})
		}
		groups[g].members = append(groups[g].members, i)
		groups[g].key += fmt.Sprintf("%s:%v;", suffix, masters[i])
	}
	return groups
}

// gradNormGraph returns the global gradient norm of the gradient sums divided by the step's
// units (torch.nn.utils.clip_grad_norm_'s total norm) and the clipping coefficient
// min(1, maxNorm/(norm+1e-6)) (1 when maxNorm ≤ 0). Inputs: the nt gradient sums, then units.
func gradNormGraph(maxNorm float64, nt int) func([]*Node) []*Node {
	return func(inputs []*Node) []*Node {
		g, units := inputs[:nt], inputs[nt]
		sq := make([]*Node, nt)
		for i := range g {
			sq[i] = ReduceAllSum(Square(Div(g[i], units)))
		}
		norm := Sqrt(ReduceAllSum(Stack(sq, 0)))
		coef := OnesLike(norm)
		if maxNorm > 0 {
			coef = MinScalar(Div(Scalar(norm.Graph(), norm.DType(), maxNorm), AddScalar(norm, 1e-6)), 1.0)
		}
		return []*Node{norm, coef}
	}
}

// updateGraph is one group's optimizer update. Inputs: the members' parameters (the float32
// master where one is kept), their gradient sums, their optimizer states (StateNames order per
// member), then step, learning rate, units and the clipping coefficient. Outputs: the new
// parameters, the rounded working copies of the members with a master (working[i] is their
// dtype, InvalidDType for the others), then the new states.
func updateGraph(opt Optimizer, names []string, working []dtypes.DType, clip bool) func([]*Node) []*Node {
	nm, ns := len(names), len(opt.StateNames())
	return func(inputs []*Node) []*Node {
		params, grads, states := inputs[:nm], inputs[nm:2*nm], inputs[2*nm:2*nm+nm*ns]
		rest := inputs[2*nm+nm*ns:]
		stepN, lrN, unitsN, coef := rest[0], rest[1], rest[2], rest[3]
		var newP, copies, newS []*Node
		for i := range params {
			g := Div(grads[i], unitsN)
			if clip {
				g = Mul(g, coef)
			}
			p, st := opt.Update(params[i], g, states[i*ns:(i+1)*ns], stepN, lrN, decays(names[i]))
			newP = append(newP, p)
			newS = append(newS, st...)
			if working[i] != dtypes.InvalidDType {
				copies = append(copies, ConvertDType(p, working[i]))
			}
		}
		return append(append(newP, copies...), newS...)
	}
}
