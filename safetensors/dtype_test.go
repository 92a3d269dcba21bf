package safetensors

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

// posInf returns +Inf as a float64.
func posInf() float64 { return math.Inf(1) }

// refBFloat16 rounds a non-NaN float32 to bfloat16 by comparing the two
// candidate neighbours in float64, ties to the even one.
func refBFloat16(f float32) uint16 {
	u := math.Float32bits(f)
	lo := uint16(u >> 16)
	if u&0xFFFF == 0 {
		return lo
	}
	hi := lo + 1
	dLo := math.Abs(float64(f) - float64(BFloat16ToFloat32(lo)))
	var dHi float64
	if hi&0x7FFF == 0x7F80 { // rounding up reaches infinity: measure against 2^128
		dHi = math.Abs(math.Abs(float64(f)) - math.Ldexp(1, 128))
	} else {
		dHi = math.Abs(float64(f) - float64(BFloat16ToFloat32(hi)))
	}
	switch {
	case dLo < dHi:
		return lo
	case dHi < dLo:
		return hi
	case lo&1 == 0:
		return lo
	default:
		return hi
	}
}

func TestFloat32ToBFloat16AgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(u uint32) {
		f := math.Float32frombits(u)
		if f != f {
			assert.Equal(t, uint16(0xFFFF), Float32ToBFloat16(f))
			return
		}
		if got, want := Float32ToBFloat16(f), refBFloat16(f); got != want {
			t.Fatalf("Float32ToBFloat16(%#08x) = %#04x, want %#04x", u, got, want)
		}
	}
	for hi := range uint32(1 << 16) { // every bfloat16 neighbourhood: exact, tie, and either side
		for _, lo := range []uint32{0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF} {
			check(hi<<16 | lo)
		}
	}
	for range 200_000 {
		check(rng.Uint32())
	}
}

func TestFloat16ToFloat32Exhaustive(t *testing.T) {
	for h := range uint32(1 << 16) {
		got := Float16ToFloat32(uint16(h))
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		exp, mant := int(h>>10)&0x1F, float64(h&0x3FF)
		var want float64
		switch exp {
		case 0:
			want = sign * math.Ldexp(mant, -24)
		case 0x1F:
			if mant != 0 {
				assert.True(t, got != got, "%#04x is NaN", h)
				assert.Equal(t, uint32(h&0x3FF)<<13, math.Float32bits(got)&0x7FFFFF, "%#04x keeps its payload", h)
				continue
			}
			want = sign * math.Inf(1)
		default:
			want = sign * math.Ldexp(1+mant/1024, exp-15)
		}
		if math.Float32bits(got) != math.Float32bits(float32(want)) {
			t.Fatalf("Float16ToFloat32(%#04x) = %v, want %v", h, got, want)
		}
	}
}

func TestDTypeSizes(t *testing.T) {
	tests := []struct {
		dtype DType
		size  int
	}{
		{BOOL, 1}, {U8, 1}, {I8, 1}, {F8E4M3, 1}, {F8E5M2, 1}, {F8E8M0, 1},
		{F16, 2}, {BF16, 2}, {I16, 2}, {U16, 2},
		{F32, 4}, {I32, 4}, {U32, 4},
		{F64, 8}, {I64, 8}, {U64, 8}, {C64, 8},
		{"F4", 0}, {"float32", 0},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.size, tc.dtype.Size(), tc.dtype)
		assert.Equal(t, tc.size > 0, tc.dtype.Valid(), tc.dtype)
	}
}
