package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// golden is testdata/fixtures.json, written by tools/oracle/safetensors_fixtures.py.
type golden struct {
	Escapes struct {
		Name   string `json:"name"`
		Format string `json:"format"`
	} `json:"escapes"`
	Tensors   map[string]goldenTensor `json:"tensors"`
	Metadata  map[string]string       `json:"metadata"`
	BF16Edges []struct {
		F32Bits     uint32 `json:"f32_bits"`
		TorchVector uint16 `json:"torch_vector"`
	} `json:"bf16_edges"`
	TinyLlama struct {
		MaxShardSize   int64    `json:"max_shard_size"`
		StateDictOrder []string `json:"state_dict_order"`
		Tensors        map[string]struct {
			DType        DType    `json:"dtype"`
			Shape        []int    `json:"shape"`
			Sum          float64  `json:"sum"`
			FirstF32Bits []uint32 `json:"first_f32_bits"`
		} `json:"tensors"`
	} `json:"tiny_llama"`
}

// goldenTensor is the expected content of one tensor of fixtures.safetensors.
type goldenTensor struct {
	DType   DType    `json:"dtype"`
	Shape   []int    `json:"shape"`
	Bits    []uint64 `json:"bits"`     // raw element bits of float dtypes
	F32Bits []uint32 `json:"f32_bits"` // torch's conversion of float dtypes to float32
	Ints    []int64  `json:"ints"`     // values of integer and bool dtypes
}

// rawBytes encodes the golden values in the tensor's little-endian layout.
func (g goldenTensor) rawBytes() []byte {
	size := g.DType.Size()
	values := g.Bits
	if g.Bits == nil {
		for _, v := range g.Ints {
			values = append(values, uint64(v))
		}
	}
	out := make([]byte, len(values)*size)
	var tmp [8]byte
	for i, v := range values {
		binary.LittleEndian.PutUint64(tmp[:], v)
		copy(out[i*size:], tmp[:size])
	}
	return out
}

// loadGolden reads testdata/fixtures.json.
func loadGolden(t *testing.T) golden {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "fixtures.json"))
	require.NoError(t, err)
	var g golden
	require.NoError(t, json.Unmarshal(raw, &g))
	return g
}

// goldenSources returns the golden fixture tensors as Sources, in name order.
func goldenSources(g golden) []Source {
	var out []Source
	for name, gt := range g.Tensors {
		out = append(out, RawSource(name, gt.DType, gt.Shape, gt.rawBytes()))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func TestGoldenFixturesRead(t *testing.T) {
	g := loadGolden(t)
	f, err := Open(filepath.Join("testdata", "fixtures.safetensors"))
	require.NoError(t, err)
	defer f.Close()

	assert.Equal(t, g.Metadata, f.Metadata())
	var names []string
	for name := range g.Tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	assert.Equal(t, names, f.Names())

	for _, name := range names {
		gt := g.Tensors[name]
		t.Run(name, func(t *testing.T) {
			tensor, err := f.Tensor(name)
			require.NoError(t, err)
			assert.Equal(t, gt.DType, tensor.DType)
			assert.Equal(t, gt.Shape, tensor.Shape)
			assert.Equal(t, gt.rawBytes(), tensor.Data, "raw bytes")
			if gt.F32Bits != nil {
				values, err := tensor.Float32s()
				require.NoError(t, err)
				bits := make([]uint32, len(values))
				for i, v := range values {
					bits[i] = math.Float32bits(v)
				}
				assert.Equal(t, gt.F32Bits, bits, "float32 conversion matches torch's .float()")
			} else {
				ints, err := tensor.Int64s()
				require.NoError(t, err)
				assert.Equal(t, gt.Ints, ints)
			}
			if gt.DType == BF16 {
				bits, err := tensor.BFloat16s()
				require.NoError(t, err)
				for i, b := range bits {
					assert.Equal(t, uint16(gt.Bits[i]), b)
				}
			}
		})
	}
}

func TestGoldenFixturesSaveIsByteIdentical(t *testing.T) {
	g := loadGolden(t)
	path := filepath.Join(t.TempDir(), "fixtures.safetensors")
	require.NoError(t, Save(path, goldenSources(g), nil))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	want, err := os.ReadFile(filepath.Join("testdata", "fixtures.safetensors"))
	require.NoError(t, err)
	assert.Equal(t, want, got, "Save must reproduce safetensors.torch.save_file byte for byte")
}

func TestGoldenEscapesAreByteIdentical(t *testing.T) {
	g := loadGolden(t)
	require.NotEmpty(t, g.Escapes.Name)
	path := filepath.Join(t.TempDir(), "escapes.safetensors")
	require.NoError(t, Save(path, []Source{Float32Source(g.Escapes.Name, []int{1}, []float32{1})},
		map[string]string{"format": g.Escapes.Format}))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	want, err := os.ReadFile(filepath.Join("testdata", "escapes.safetensors"))
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got), "header strings escaped as serde_json escapes them")

	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, []string{g.Escapes.Name}, f.Names())
	assert.Equal(t, map[string]string{"format": g.Escapes.Format}, f.Metadata())
}

func TestBFloat16MatchesTorch(t *testing.T) {
	g := loadGolden(t)
	require.NotEmpty(t, g.BF16Edges)
	values := make([]float32, len(g.BF16Edges))
	for i, e := range g.BF16Edges {
		values[i] = math.Float32frombits(e.F32Bits)
		assert.Equalf(t, e.TorchVector, Float32ToBFloat16(values[i]), "f32 bits %#08x", e.F32Bits)
	}
	// The same conversion through the writer and back through the reader.
	path := filepath.Join(t.TempDir(), "edges.safetensors")
	require.NoError(t, Save(path, []Source{BFloat16Source("edges", []int{len(values)}, values)}, nil))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	tensor, err := f.Tensor("edges")
	require.NoError(t, err)
	bits, err := tensor.BFloat16s()
	require.NoError(t, err)
	for i, e := range g.BF16Edges {
		assert.Equalf(t, e.TorchVector, bits[i], "f32 bits %#08x", e.F32Bits)
	}
	// Reading F32 data as bfloat16 converts the same way.
	require.NoError(t, Save(path, []Source{Float32Source("edges", []int{len(values)}, values)}, nil))
	f32, err := Open(path)
	require.NoError(t, err)
	defer f32.Close()
	tensor, err = f32.Tensor("edges")
	require.NoError(t, err)
	bits, err = tensor.BFloat16s()
	require.NoError(t, err)
	for i, e := range g.BF16Edges {
		assert.Equalf(t, e.TorchVector, bits[i], "f32 bits %#08x", e.F32Bits)
	}
}

func TestGoldenTinyLlamaSharded(t *testing.T) {
	g := loadGolden(t)
	dir := filepath.Join("testdata", "tiny-llama")
	c, err := OpenDir(dir)
	require.NoError(t, err)
	defer c.Close()

	want := append([]string{}, g.TinyLlama.StateDictOrder...)
	sort.Strings(want)
	assert.Equal(t, want, c.Names())
	assert.Len(t, c.Files(), 3)
	assert.Equal(t, map[string]string{"format": "pt"}, c.Metadata())

	var sources []Source
	for _, name := range g.TinyLlama.StateDictOrder {
		exp := g.TinyLlama.Tensors[name]
		tensor, err := c.Tensor(name)
		require.NoError(t, err, name)
		assert.Equal(t, exp.DType, tensor.DType, name)
		assert.Equal(t, exp.Shape, tensor.Shape, name)
		values, err := tensor.Float32s()
		require.NoError(t, err)
		var sum float64
		for i, v := range values {
			sum += float64(v)
			if i < len(exp.FirstF32Bits) {
				assert.Equal(t, exp.FirstF32Bits[i], math.Float32bits(v), name)
			}
		}
		assert.InDelta(t, exp.Sum, sum, 1e-9, name)
		bits, err := tensor.BFloat16s()
		require.NoError(t, err)
		sources = append(sources, BFloat16BitsSource(name, tensor.Shape, bits))
	}

	// Saving the same tensors in state-dict order with the same shard size
	// reproduces transformers' save_pretrained byte for byte.
	out := t.TempDir()
	files, err := SaveCheckpoint(out, sources, SaveOptions{MaxShardSize: g.TinyLlama.MaxShardSize})
	require.NoError(t, err)
	assert.Equal(t, []string{
		"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
		"model-00003-of-00003.safetensors", "model.safetensors.index.json",
	}, files)
	for _, name := range files {
		wantBytes, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		gotBytes, err := os.ReadFile(filepath.Join(out, name))
		require.NoError(t, err)
		assert.Equal(t, string(wantBytes), string(gotBytes), name)
	}
}

// TestOracleOutput writes files for `tools/oracle/safetensors_fixtures.py
// check DIR` when SAFETENSORS_ORACLE_DIR=DIR is set, and is skipped otherwise.
func TestOracleOutput(t *testing.T) {
	dir := os.Getenv("SAFETENSORS_ORACLE_DIR")
	if dir == "" {
		t.Skip("set SAFETENSORS_ORACLE_DIR to write files for tools/oracle/safetensors_fixtures.py check")
	}
	g := loadGolden(t)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, Save(filepath.Join(dir, "fixtures.safetensors"), goldenSources(g), nil))

	edges := make([]float32, len(g.BF16Edges))
	for i, e := range g.BF16Edges {
		edges[i] = math.Float32frombits(e.F32Bits)
	}
	require.NoError(t, Save(filepath.Join(dir, "bf16_edges.safetensors"),
		[]Source{BFloat16Source("edges", []int{len(edges)}, edges)}, nil))

	src := filepath.Join("testdata", "tiny-llama")
	c, err := OpenDir(src)
	require.NoError(t, err)
	defer c.Close()
	var sources []Source
	for _, name := range g.TinyLlama.StateDictOrder {
		tensor, err := c.Tensor(name)
		require.NoError(t, err)
		bits, err := tensor.BFloat16s()
		require.NoError(t, err)
		sources = append(sources, BFloat16BitsSource(name, tensor.Shape, bits))
	}
	llama := filepath.Join(dir, "tiny-llama")
	require.NoError(t, os.MkdirAll(llama, 0o755))
	_, err = SaveCheckpoint(llama, sources, SaveOptions{MaxShardSize: g.TinyLlama.MaxShardSize})
	require.NoError(t, err)
	config, err := os.ReadFile(filepath.Join(src, "config.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(llama, "config.json"), config, 0o644))

	adapter := filepath.Join(dir, "adapter")
	require.NoError(t, os.MkdirAll(adapter, 0o755))
	_, err = SaveCheckpoint(adapter, []Source{
		Float32Source("base_model.model.lm_head.lora_A.weight", []int{2, 16}, make([]float32, 32)),
		Float32Source("base_model.model.lm_head.lora_B.weight", []int{32, 2}, make([]float32, 64)),
	}, SaveOptions{BaseName: "adapter_model.safetensors"})
	require.NoError(t, err)
}
