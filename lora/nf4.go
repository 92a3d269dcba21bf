package lora

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/core/tensors"

	"handbook/model"
)

// NF4Table is the 4-bit NormalFloat code of QLoRA (Dettmers et al. 2023, appendix E), the float32
// values bitsandbytes uses: quantiles of N(0,1) normalized to [-1, 1] with an exact zero.
var NF4Table = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// NF4BlockSize is the number of values sharing one absmax (bitsandbytes' default blocksize 64);
// NF4StatsBlockSize is the block of absmax values sharing one scale under double quantization.
const (
	NF4BlockSize      = 64
	NF4StatsBlockSize = 256
)

// NF4 is a tensor quantized to NF4 as bitsandbytes.functional.quantize_4bit does.
type NF4 struct {
	// Packed holds two codes per byte, the first in the high nibble, for ceil(n/2) bytes.
	Packed []uint8
	// Absmax is each block's scale (nil under double quantization).
	Absmax []float32
	// Double quantization (compress_statistics): the absmax values minus their mean Offset,
	// quantized with the 8-bit dynamic code in blocks of NF4StatsBlockSize.
	AbsmaxCodes []uint8
	AbsmaxScale []float32
	Offset      float32
	// Dims is the original tensor's shape.
	Dims []int
	// BlockSize is the number of values per absmax.
	BlockSize int
}

// bucketize returns how many of the sorted bounds are strictly below v (torch.bucketize, right=False).
func bucketize(v float32, bounds []float32) int {
	return sort.Search(len(bounds), func(i int) bool { return bounds[i] >= v })
}

func midpoints(code []float32) []float32 {
	b := make([]float32, len(code)-1)
	for i := range b {
		b[i] = (code[i] + code[i+1]) / 2
	}
	return b
}

// blockwise scales values by their block's absmax and returns the scaled values and absmaxes,
// as bitsandbytes' reference kernel does (multiply by the float32 reciprocal, clamp to ±1).
func blockwise(vals []float32, blockSize int) (scaled, absmax []float32) {
	scaled = make([]float32, len(vals))
	for start := 0; start < len(vals); start += blockSize {
		end := min(start+blockSize, len(vals))
		var m float32
		for _, v := range vals[start:end] {
			m = max(m, float32(math.Abs(float64(v))))
		}
		absmax = append(absmax, m)
		m = max(m, 1e-38)
		inv := 1 / m
		for i := start; i < end; i++ {
			s := vals[i] * inv
			if end-start < blockSize { // bitsandbytes divides the trailing partial block
				s = vals[i] / m
			}
			scaled[i] = min(max(s, -1), 1)
		}
	}
	return scaled, absmax
}

// QuantizeNF4 quantizes values (a tensor of shape dims, row-major) to NF4 in blocks of blockSize,
// optionally with double quantization of the absmax values, matching bitsandbytes.
func QuantizeNF4(vals []float32, dims []int, blockSize int, double bool) (*NF4, error) {
	n := 1
	for _, d := range dims {
		n *= d
	}
	if n != len(vals) || n == 0 {
		return nil, fmt.Errorf("lora: NF4: %d values for shape %v", len(vals), dims)
	}
	if blockSize <= 0 || blockSize%2 != 0 {
		return nil, fmt.Errorf("lora: NF4: block size %d must be positive and even", blockSize)
	}
	scaled, absmax := blockwise(vals, blockSize)
	bounds := midpoints(NF4Table[:])
	q := &NF4{Packed: make([]uint8, (n+1)/2), Dims: append([]int{}, dims...), BlockSize: blockSize}
	for i, s := range scaled {
		c := uint8(bucketize(s, bounds))
		if i%2 == 0 {
			q.Packed[i/2] = c << 4
		} else {
			q.Packed[i/2] |= c
		}
	}
	if n%2 == 1 { // bitsandbytes pads with a zero value: code 7
		q.Packed[n/2] |= uint8(bucketize(0, bounds))
	}
	if !double {
		q.Absmax = absmax
		return q, nil
	}
	// bitsandbytes takes torch's float32 mean; this is the exact mean rounded once, which can
	// differ from it in the last bit (torch's vectorized summation order).
	var sum float64
	for _, a := range absmax {
		sum += float64(a)
	}
	q.doubleQuantize(absmax, float32(sum/float64(len(absmax))))
	return q, nil
}

// doubleQuantize stores absmax − offset with the 8-bit dynamic code in blocks of
// NF4StatsBlockSize (bitsandbytes' quantize_blockwise).
func (q *NF4) doubleQuantize(absmax []float32, offset float32) {
	q.Offset = offset
	centered := make([]float32, len(absmax))
	for i, a := range absmax {
		centered[i] = a - offset
	}
	s2, scale := blockwise(centered, NF4StatsBlockSize)
	code := DynamicMap()
	b2 := midpoints(code[:])
	q.AbsmaxCodes = make([]uint8, len(s2))
	for i, s := range s2 {
		q.AbsmaxCodes[i] = uint8(bucketize(s, b2))
	}
	q.AbsmaxScale = scale
	q.Absmax = nil
}

// BlockAbsmax returns each block's absmax, decoding double quantization.
func (q *NF4) BlockAbsmax() []float32 {
	if q.AbsmaxCodes == nil {
		return q.Absmax
	}
	code := DynamicMap()
	out := make([]float32, len(q.AbsmaxCodes))
	for i, c := range q.AbsmaxCodes {
		out[i] = code[c]*q.AbsmaxScale[i/NF4StatsBlockSize] + q.Offset
	}
	return out
}

// DequantizeNF4 returns the float32 values q stands for: NF4Table[code] × block absmax.
func DequantizeNF4(q *NF4) []float32 {
	n := 1
	for _, d := range q.Dims {
		n *= d
	}
	absmax := q.BlockAbsmax()
	out := make([]float32, n)
	for i := range out {
		c := q.Packed[i/2] >> 4
		if i%2 == 1 {
			c = q.Packed[i/2] & 0xF
		}
		out[i] = NF4Table[c] * absmax[i/q.BlockSize]
	}
	return out
}

// DynamicMap is bitsandbytes' signed 8-bit dynamic quantization code (create_dynamic_map with
// 7 exponent bits), sorted, used for double quantization of absmax values.
func DynamicMap() [256]float32 {
	const maxExponentBits, nonSignBits = 7, 7
	var data []float32
	for i := 0; i < maxExponentBits; i++ {
		items := 1<<(i+nonSignBits-maxExponentBits) + 1
		bounds := linspace32(0.1, 1, items)
		scale := math.Pow(10, float64(-(maxExponentBits-1)+i))
		for j := 0; j+1 < len(bounds); j++ {
			mean := (bounds[j] + bounds[j+1]) / 2
			data = append(data, float32(scale)*mean, -float32(scale)*mean)
		}
	}
	data = append(data, 0, 1)
	for len(data) < 256 {
		data = append(data, 0)
	}
	sort.Slice(data, func(i, j int) bool { return data[i] < data[j] })
	var out [256]float32
	copy(out[:], data)
	return out
}

// linspace32 is torch.linspace in float32 on CPU: start + step·i for the first half and
// end − step·(steps−1−i) for the second, each one fused multiply-add (one rounding), as the
// compiled kernel computes it.
func linspace32(start, end float32, steps int) []float32 {
	out := make([]float32, steps)
	step := (end - start) / float32(steps-1)
	half := steps / 2
	for i := range out {
		if i < half {
			out[i] = float32(float64(start) + float64(step)*float64(i))
		} else {
			out[i] = float32(float64(end) - float64(step)*float64(steps-i-1))
		}
	}
	return out
}

// Weight names of an NF4-quantized linear weight "<module>.weight".
const (
	nf4Suffix       = ".weight.nf4"         // packed codes, uint8 [blocks·blockSize/2]
	nf4AbsmaxSuffix = ".weight.nf4_absmax"  // float32 [blocks], or uint8 codes when double quantized
	nf4ScaleSuffix  = ".weight.nf4_absmax2" // float32 [ceil(blocks/256)] (double quantization)
	nf4OffsetSuffix = ".weight.nf4_offset"  // float32 [1] (double quantization)
)

func isQuantizedWeight(name string) bool {
	return strings.Contains(name, ".weight.nf4")
}

// QuantizeOptions configures QuantizeBase (transformers' BitsAndBytesConfig for 4-bit loading).
type QuantizeOptions struct {
	// DoubleQuant also quantizes the absmax values (bnb_4bit_use_double_quant).
	DoubleQuant bool
	// ComputeDType is the dtype the dequantized weight is used in (bnb_4bit_compute_dtype);
	// InvalidDType means the input's dtype.
	ComputeDType dtypes.DType
}

// NF4Linear is the model.Linear of a QLoRA base: modules whose weight is stored as NF4 are
// dequantized in the graph and then applied like a Dense layer; others go to Base.
type NF4Linear struct {
	Base    model.Linear
	Options QuantizeOptions
	// outDims maps each quantized module to its output features.
	outDims map[string]int
}

func (l *NF4Linear) outFeatures(module string) int { return l.outDims[module] }

// QuantizeBase replaces every linear weight of m except lm_head (which transformers keeps in
// full precision) by its NF4 form and routes the linear layers through an NF4Linear. The
// quantized tensors are frozen: only an adapter attached afterwards trains.
func QuantizeBase(m *model.Model, opts QuantizeOptions) error {
	m.Finalize()
	if _, ok := m.Decoder.Linear.(*NF4Linear); ok {
		return fmt.Errorf("lora: quantize: the model is already quantized")
	}
	l := &NF4Linear{Base: m.Decoder.Linear, Options: opts, outDims: map[string]int{}}
	for _, mod := range LinearModules(m.Config) {
		if mod == "lm_head" {
			continue
		}
		name := mod + ".weight"
		t := m.Weights[name]
		if t == nil {
			return fmt.Errorf("lora: quantize: missing weight %s", name)
		}
		vals, err := model.Float32Values(t)
		if err != nil {
			return fmt.Errorf("lora: quantize %s: %w", name, err)
		}
		l.outDims[mod] = t.Shape().Dim(0)
		// Pad to whole blocks so the graph can reshape codes to [blocks, blockSize].
		padded := vals
		if rem := len(vals) % NF4BlockSize; rem != 0 {
			padded = append(append([]float32{}, vals...), make([]float32, NF4BlockSize-rem)...)
		}
		q, err := QuantizeNF4(padded, []int{len(padded)}, NF4BlockSize, opts.DoubleQuant)
		if err != nil {
			return fmt.Errorf("lora: quantize %s: %w", name, err)
		}
		delete(m.Weights, name)
		m.Weights[mod+nf4Suffix] = tensors.FromFlatDataAndDimensions(q.Packed, len(q.Packed))
		if opts.DoubleQuant {
			m.Weights[mod+nf4AbsmaxSuffix] = tensors.FromFlatDataAndDimensions(q.AbsmaxCodes, len(q.AbsmaxCodes))
			m.Weights[mod+nf4ScaleSuffix] = tensors.FromFlatDataAndDimensions(q.AbsmaxScale, len(q.AbsmaxScale))
			m.Weights[mod+nf4OffsetSuffix] = tensors.FromFlatDataAndDimensions([]float32{q.Offset}, 1)
		} else {
			m.Weights[mod+nf4AbsmaxSuffix] = tensors.FromFlatDataAndDimensions(q.Absmax, len(q.Absmax))
		}
	}
	m.Decoder.Linear = l
	return nil
}

// Apply implements model.Linear.
func (l *NF4Linear) Apply(p model.Params, module string, x *Node) *Node {
	w := l.weight(p, module, x)
	if w == nil {
		base := l.Base
		if base == nil {
			base = model.Dense{}
		}
		return base.Apply(p, module, x)
	}
	dt := w.DType()
	q := model.Params{module + ".weight": w}
	if b := p[module+".bias"]; b != nil {
		q[module+".bias"] = ConvertDType(b, dt)
	}
	y := model.Dense{}.Apply(q, module, ConvertDType(x, dt))
	return ConvertDType(y, x.DType())
}

// PlainWeight implements model.PlainLinear: the weight of a module left unquantized (lm_head),
// as its base computes it; nil for quantized modules.
func (l *NF4Linear) PlainWeight(p model.Params, module string) *Node {
	if p[module+nf4Suffix] != nil {
		return nil
	}
	return model.PlainWeightOf(l.Base, p, module)
}

// weight dequantizes module's NF4 weight to [out, in] in the compute dtype (x's by default), or
// returns nil when the module is not quantized.
func (l *NF4Linear) weight(p model.Params, module string, x *Node) *Node {
	packed := p[module+nf4Suffix]
	if packed == nil {
		return nil
	}
	w := dequantizeGraph(packed, p[module+nf4AbsmaxSuffix], p[module+nf4ScaleSuffix], p[module+nf4OffsetSuffix], x)
	in := x.Shape().Dim(-1)
	out := l.outFeatures(module)
	w = Reshape(SliceAxis(w, 0, AxisRange(0, out*in)), out, in)
	dt := l.Options.ComputeDType
	if dt == dtypes.InvalidDType {
		dt = x.DType()
	}
	return ConvertDType(w, dt)
}

// dequantizeGraph decodes NF4 weights in the graph: [blocks·blockSize] float32.
//
// The codes are tied to the linear's input x, so the decoded weight depends on x and a
// checkpointed layer recomputes it in its backward pass (see tiedCodes).
func dequantizeGraph(packed, absmax, scale, offset, x *Node) *Node {
	g := packed.Graph()
	codes := tiedCodes(packed, x)
	sixteen := Scalar(g, dtypes.Int32, 16)
	hi, lo := Div(codes, sixteen), Mod(codes, sixteen)
	idx := Reshape(Stack([]*Node{hi, lo}, -1), -1, 1) // [n, 1]
	table := Const(g, NF4Table[:])
	vals := Gather(table, idx) // [n]
	am := StopGradient(absmax)
	if scale != nil {
		code := DynamicMap()
		amIdx := Reshape(tiedCodes(am, x), -1, 1)
		decoded := Gather(Const(g, code[:]), amIdx) // [blocks]
		blocks := decoded.Shape().Dim(0)
		// Block i's scale is scale[i/NF4StatsBlockSize], indexed by an Iota rather than a
		// constant table, which for a 7B model's layer would embed ~1 MB per module in the program.
		perBlock := DivScalar(Iota(g, shapes.Make(dtypes.Int32, blocks, 1), 0), NF4StatsBlockSize)
		sc := Gather(StopGradient(scale), perBlock)
		am = Add(Mul(decoded, sc), StopGradient(offset))
	}
	blocks := am.Shape().Dim(0)
	vals = Reshape(vals, blocks, -1)
	return Reshape(Mul(vals, Reshape(am, blocks, 1)), -1)
}

// tiedCodes returns the uint8 codes as int32, made dependent on x by a scheduling barrier taken
// in float32. The decoder's tieToInput ties the packed codes too, but go-xla emulates the barrier
// by adding 0·x[0], and on the XLA CPU plugin XLA's simplifier folds that away for integer
// operands: every layer's float32 table lookup was then computed once (CSE merged the forward's
// with the recomputation's) and kept until the backward pass, ~0.8 GiB per layer at 7B.
func tiedCodes(codes, x *Node) *Node {
	c := SchedulingBarrier(ConvertDType(StopGradient(codes), dtypes.Float32), x)
	return ConvertDType(c, dtypes.Int32)
}

// dequantizeInto restores "<module>.weight" float32 tensors in w for every NF4 weight of m.
func dequantizeInto(m *model.Model, w model.Weights) error {
	for _, mod := range LinearModules(m.Config) {
		packed := m.Weights[mod+nf4Suffix]
		if packed == nil {
			continue
		}
		out, in := 0, 0
		for _, s := range m.Config.ParamSpecs() {
			if s.Name == mod+".weight" {
				out, in = s.Dims[0], s.Dims[1]
			}
		}
		q := &NF4{BlockSize: NF4BlockSize}
		var err error
		if q.Packed, err = tensors.CopyFlatData[uint8](packed); err != nil {
			return fmt.Errorf("lora: dequantize %s: %w", mod, err)
		}
		q.Dims = []int{2 * len(q.Packed)}
		if sc := m.Weights[mod+nf4ScaleSuffix]; sc != nil {
			if q.AbsmaxCodes, err = tensors.CopyFlatData[uint8](m.Weights[mod+nf4AbsmaxSuffix]); err != nil {
				return err
			}
			if q.AbsmaxScale, err = tensors.CopyFlatData[float32](sc); err != nil {
				return err
			}
			off, err := tensors.CopyFlatData[float32](m.Weights[mod+nf4OffsetSuffix])
			if err != nil {
				return err
			}
			q.Offset = off[0]
		} else if q.Absmax, err = tensors.CopyFlatData[float32](m.Weights[mod+nf4AbsmaxSuffix]); err != nil {
			return err
		}
		vals := DequantizeNF4(q)[:out*in]
		w[mod+".weight"] = tensors.FromFlatDataAndDimensions(vals, out, in)
	}
	return nil
}
