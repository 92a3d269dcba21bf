package safetensors

import "math"

// DType is a safetensors element type, spelled as in the header ("F32", "BF16", ...).
type DType string

// The element types this package reads and writes. The sub-byte types of the
// format (F4, F6_E2M3, F6_E3M2) are not supported.
const (
	BOOL   DType = "BOOL"
	U8     DType = "U8"
	I8     DType = "I8"
	F8E5M2 DType = "F8_E5M2"
	F8E4M3 DType = "F8_E4M3"
	F8E8M0 DType = "F8_E8M0"
	I16    DType = "I16"
	U16    DType = "U16"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I32    DType = "I32"
	U32    DType = "U32"
	F32    DType = "F32"
	C64    DType = "C64"
	F64    DType = "F64"
	I64    DType = "I64"
	U64    DType = "U64"
)

// dtypeOrder lists the dtypes in the order of the Rust safetensors Dtype
// enum. The Python library lays tensors out by descending enum order (then by
// name), and this package's writer does the same so its files are
// byte-identical to safetensors.torch.save_file's.
var dtypeOrder = []DType{BOOL, U8, I8, F8E5M2, F8E4M3, F8E8M0, I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64}

var dtypeSizes = map[DType]int{
	BOOL: 1, U8: 1, I8: 1, F8E5M2: 1, F8E4M3: 1, F8E8M0: 1,
	I16: 2, U16: 2, F16: 2, BF16: 2,
	I32: 4, U32: 4, F32: 4,
	C64: 8, F64: 8, I64: 8, U64: 8,
}

// Size returns the number of bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int { return dtypeSizes[d] }

// Valid reports whether d is a dtype this package supports.
func (d DType) Valid() bool { return d.Size() > 0 }

// rank returns d's position in dtypeOrder (-1 if unknown).
func (d DType) rank() int {
	for i, x := range dtypeOrder {
		if x == d {
			return i
		}
	}
	return -1
}

// BFloat16ToFloat32 converts bfloat16 bits to float32. The conversion is exact.
func BFloat16ToFloat32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}

// Float32ToBFloat16 converts f to bfloat16 bits with round-to-nearest-even,
// bit for bit as torch's CPU tensor cast (tensor.to(torch.bfloat16)) does:
// infinities and signed zeros are kept, finite values beyond the bfloat16
// range round to infinity, subnormals round like any other value, and every
// NaN becomes 0xFFFF, the NaN torch's vectorized CPU kernel produces. (Torch's
// scalar c10::BFloat16 gives 0x7FC0 and CUDA 0x7FFF for NaN; all are NaN.)
func Float32ToBFloat16(f float32) uint16 {
	if f != f {
		return 0xFFFF
	}
	u := math.Float32bits(f)
	return uint16((u + 0x7FFF + (u>>16)&1) >> 16)
}

// Float16ToFloat32 converts IEEE 754 half-precision bits to float32. The
// conversion is exact, subnormals, infinities and NaN payloads included.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1F
	mant := uint32(h & 0x3FF)
	switch {
	case exp == 0x1F: // Inf or NaN: keep the payload in the top mantissa bits.
		return math.Float32frombits(sign | 0x7F800000 | mant<<13)
	case exp != 0: // Normal.
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0: // Signed zero.
		return math.Float32frombits(sign)
	default: // Subnormal: value = mant × 2⁻²⁴, exactly representable in float32.
		f := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(f))
	}
}
