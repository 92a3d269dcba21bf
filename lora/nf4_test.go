package lora

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"handbook/safetensors"
)

// nf4Fixture reads lora/testdata/nf4.safetensors (bitsandbytes, tools/oracle/peft_golden.py).
func nf4Fixture(t *testing.T) (f32 map[string][]float32, u8 map[string][]uint8, dims []int) {
	t.Helper()
	f, err := safetensors.Open(filepath.Join("testdata", "nf4.safetensors"))
	require.NoError(t, err)
	defer f.Close()
	f32, u8 = map[string][]float32{}, map[string][]uint8{}
	for _, n := range f.Names() {
		tn, err := f.Tensor(n)
		require.NoError(t, err)
		if tn.DType == safetensors.U8 {
			u8[n] = append([]uint8{}, tn.Data...)
			continue
		}
		f32[n], err = tn.Float32s()
		require.NoError(t, err)
		if n == "input" {
			dims = tn.Shape
		}
	}
	return f32, u8, dims
}

func TestNF4TableMatchesBitsandbytes(t *testing.T) {
	f32, _, _ := nf4Fixture(t)
	assert.Equal(t, f32["nf4_table"], NF4Table[:])
}

func TestDynamicMapMatchesBitsandbytes(t *testing.T) {
	f32, _, _ := nf4Fixture(t)
	code := DynamicMap()
	assert.Equal(t, f32["nested.code2"], code[:])
}

func TestNF4MatchesBitsandbytes(t *testing.T) {
	f32, u8, dims := nf4Fixture(t)
	for _, tc := range []struct {
		tag    string
		double bool
	}{{"plain", false}, {"nested", true}} {
		t.Run(tc.tag, func(t *testing.T) {
			q, err := QuantizeNF4(f32["input"], dims, NF4BlockSize, tc.double)
			require.NoError(t, err)
			assert.Equal(t, u8[tc.tag+".packed"], q.Packed, "packed codes")
			if tc.double {
				// The offset is a float32 mean: torch's summation order may round it one ulp
				// away from the exact mean. With bitsandbytes' offset the codes are identical.
				offset := f32[tc.tag+".offset"][0]
				assert.InDelta(t, offset, q.Offset, 1e-6*float64(offset), "offset")
				plain, err := QuantizeNF4(f32["input"], dims, NF4BlockSize, false)
				require.NoError(t, err)
				q.doubleQuantize(plain.Absmax, offset)
				assert.Equal(t, u8[tc.tag+".absmax"], q.AbsmaxCodes, "absmax codes")
				assert.Equal(t, f32[tc.tag+".absmax2"], q.AbsmaxScale)
			} else {
				assert.Equal(t, f32[tc.tag+".absmax"], q.Absmax)
			}
			got := DequantizeNF4(q)
			want := f32[tc.tag+".dequantized"]
			require.Len(t, got, len(want))
			var maxDiff float64
			for i := range want {
				maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
			}
			assert.LessOrEqual(t, maxDiff, 1e-6, "dequantized values")
		})
	}
}

func TestNF4BadInput(t *testing.T) {
	_, err := QuantizeNF4([]float32{1, 2, 3}, []int{2, 2}, 64, false)
	assert.Error(t, err)
	_, err = QuantizeNF4([]float32{1, 2}, []int{2}, 0, false)
	assert.Error(t, err)
}

// TestQuantizedBaseMatchesHostDequantization checks the in-graph NF4 decoding of a QLoRA base
// against DequantizeNF4: the quantized model's logits equal those of a float model holding the
// dequantized weights, with and without double quantization, and with an adapter on top.
func TestQuantizedBaseMatchesHostDequantization(t *testing.T) {
	be := testBackend(t)
	for _, double := range []bool{false, true} {
		m := loadBase(t, be, "llama_gqa")
		require.NoError(t, QuantizeBase(m, QuantizeOptions{DoubleQuant: double}))
		_, isNF4 := m.Weights["model.layers.0.mlp.up_proj.weight"]
		assert.False(t, isNF4, "quantized weights replace the float ones")
		a, err := Load(m, filepath.Join("testdata", "peft_llama_rslora"))
		require.NoError(t, err)
		ids := [][]int32{{5, 9, 17, 3, 44, 101, 7, 2}}
		got := logits(t, m, ids)

		merged, err := a.Merge() // dequantized on the host, adapter folded in
		require.NoError(t, err)
		want := logits(t, merged, ids)
		merged.Finalize()
		assertClose(t, want, got, 1e-4, "NF4 base + adapter vs dequantized merged model")

		for n := range m.Weights {
			if a.Trainable(n) {
				assert.True(t, isAdapterWeight(n), n)
			}
		}
	}
}
