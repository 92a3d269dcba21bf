package model

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/stretchr/testify/require"
)

// MoE benchmark sizes: 2048 tokens (8 × 256), hidden 256, experts of intermediate 512, 8 experts,
// top-2 (Mixtral's routing), against a dense SwiGLU MLP of intermediate 2·512 (the same active
// FLOPs per token) and against running every expert on every token.
const (
	moeTokens, moeHidden, moeInter, moeExperts, moeTopK = 2048, 256, 512, 8, 2
)

// BenchmarkMoE times forward + backward (gradients of every weight and of the input) of one
// feed-forward block on the backend backend.New picks (GOMLX_BACKEND=xla:… for XLA):
//
//	dense      down(silu(gate·x) ⊙ up·x) with intermediate k·I: the FLOPs of k experts per token
//	routed     routeExperts: tokens sorted into expert blocks (the model's MoE path)
//	allExperts every expert on every token, weighted by the (mostly zero) routing weights
//
// flops/op is the block's forward matmul FLOPs ×3 (forward + two backward products).
func BenchmarkMoE(b *testing.B) {
	be := testBackend(b)
	rng := rand.New(rand.NewPCG(3, 4))
	randn := func(scale float64, dims ...int) *tensors.Tensor {
		n := 1
		for _, d := range dims {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return tensors.FromFlatDataAndDimensions(v, dims...)
	}
	x := randn(1, moeTokens, moeHidden)
	router := randn(0.1, moeExperts, moeHidden)
	gateUp := randn(0.05, moeExperts, 2*moeInter, moeHidden)
	down := randn(0.05, moeExperts, moeHidden, moeInter)
	denseGateUp := randn(0.05, 2*moeTopK*moeInter, moeHidden)
	denseDown := randn(0.05, moeHidden, moeTopK*moeInter)
	silu := func(v *Node) *Node { return Mul(v, Sigmoid(v)) }
	routing := func(x, router *Node) (choice, weights *Node) {
		probs := Softmax(DotGeneral(x, []int{1}, nil, router, []int{1}, nil), -1)
		_, choice = TopK(StopGradient(probs), moeTopK, -1)
		weights = takeAlongLastAxis(probs, choice)
		return choice, Div(weights, ReduceAndKeep(weights, ReduceSum, -1))
	}
	swiglu := func(x, gateUp, down *Node, inter int) *Node {
		h := DotGeneral(x, []int{x.Rank() - 1}, nil, gateUp, []int{gateUp.Rank() - 1}, nil)
		h = Mul(silu(SliceAxis(h, -1, AxisRange(0, inter))), SliceAxis(h, -1, AxisRangeToEnd(inter)))
		return DotGeneral(h, []int{h.Rank() - 1}, nil, down, []int{down.Rank() - 1}, nil)
	}
	assigned := moeTokens * moeTopK
	block := moeBlockSize(assigned, moeExperts)
	slots := (assigned + moeExperts*(block-1)) / block * block
	matmul := func(rows, inter int) float64 { return 3 * 2 * float64(rows) * moeHidden * float64(inter) * 3 }
	cases := []struct {
		name  string
		flops float64
		block func(in []*Node) *Node
		args  []*tensors.Tensor
	}{
		{"dense", matmul(moeTokens, moeTopK*moeInter), func(in []*Node) *Node {
			return swiglu(in[0], in[1], in[2], moeTopK*moeInter)
		}, []*tensors.Tensor{x, denseGateUp, denseDown}},
		{"routed", matmul(slots, moeInter), func(in []*Node) *Node {
			choice, weights := routing(in[0], in[1])
			return routeExperts(in[0], choice, weights, in[2], in[3], silu)
		}, []*tensors.Tensor{x, router, gateUp, down}},
		{"allExperts", matmul(moeTokens*moeExperts, moeInter), func(in []*Node) *Node {
			choice, weights := routing(in[0], in[1])
			// Dense routing weights [T, E]: the chosen experts' weights, zero elsewhere.
			onehot := ConvertDType(Equal(InsertAxes(choice, -1), Iota(in[0].Graph(), shapes.Make(dtypes.Int32, 1, 1, moeExperts), 2)), dtypes.Float32)
			dense := ReduceSum(Mul(onehot, InsertAxes(weights, -1)), 1)
			var out *Node
			for e := range moeExperts {
				gu := Squeeze(SliceAxis(in[2], 0, AxisElem(e)), 0)
				dn := Squeeze(SliceAxis(in[3], 0, AxisElem(e)), 0)
				y := Mul(swiglu(in[0], gu, dn, moeInter), SliceAxis(dense, 1, AxisElem(e)))
				if out == nil {
					out = y
				} else {
					out = Add(out, y)
				}
			}
			return out
		}, []*tensors.Tensor{x, router, gateUp, down}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			exec, err := NewExec(be, func(in []*Node) []*Node {
				loss := ReduceAllSum(Square(tc.block(in)))
				return append([]*Node{loss}, Gradient(loss, in...)...)
			})
			require.NoError(b, err)
			defer exec.Finalize()
			args := make([]any, len(tc.args))
			for i, a := range tc.args {
				args[i] = a
			}
			_, err = exec.Exec(args...) // compile
			require.NoError(b, err)
			cpu0 := benchCPUTime()
			b.ResetTimer()
			for b.Loop() {
				if _, err := exec.Exec(args...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(tc.flops, "flops/op")
			b.ReportMetric((benchCPUTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// benchCPUTime is the process's user+system CPU time so far.
func benchCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
