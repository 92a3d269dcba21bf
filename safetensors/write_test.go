package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSaveOpenRoundTripIsBitIdentical(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][]int{nil, {0}, {3}, {2, 3}, {2, 0, 5}, {1, 2, 3}}
	var sources []Source
	want := map[string][]byte{}
	for _, dtype := range dtypeOrder {
		for i, shape := range shapes {
			name := string(dtype) + "/" + string(rune('a'+i))
			data := make([]byte, numElements(shape)*int64(dtype.Size()))
			for j := range data {
				data[j] = byte(rng.UintN(256))
			}
			want[name] = data
			sources = append(sources, RawSource(name, dtype, shape, data))
		}
	}
	path := filepath.Join(t.TempDir(), "all.safetensors")
	metadata := map[string]string{"format": "np", "note": "quote \" backslash \\ newline \n <html> é"}
	require.NoError(t, Save(path, sources, metadata))

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	n := binary.LittleEndian.Uint64(raw)
	assert.Zero(t, (8+n)%8, "header padded to a multiple of 8")

	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, metadata, f.Metadata())
	assert.Len(t, f.Names(), len(sources))
	for _, s := range sources {
		tensor, err := f.Tensor(s.Name)
		require.NoError(t, err)
		assert.Equal(t, s.DType, tensor.DType, s.Name)
		assert.Equal(t, len(s.Shape), len(tensor.Shape), s.Name)
		assert.Equal(t, numElements(s.Shape), tensor.NumElements(), s.Name)
		assert.Equal(t, want[s.Name], append([]byte{}, tensor.Data...), s.Name)
	}
}

func TestFloatSourcesRoundTrip(t *testing.T) {
	values := []float32{0, -1.5, 3.25, 1e-40, 65504}
	path := filepath.Join(t.TempDir(), "f.safetensors")
	require.NoError(t, Save(path, []Source{
		Float32Source("f32", []int{5}, values),
		BFloat16Source("bf16", []int{5}, values),
		BFloat16BitsSource("bits", []int{1, 5}, []uint16{0x3F80, 0, 0x8000, 0x7F80, 0xFF80}),
	}, nil))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	tests := []struct {
		name string
		want []float32
	}{
		{"f32", values},
		{"bf16", []float32{0, -1.5, 3.25, BFloat16ToFloat32(Float32ToBFloat16(1e-40)), 65536}},
		{"bits", []float32{1, 0, BFloat16ToFloat32(0x8000), float32(posInf()), float32(-posInf())}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tensor, err := f.Tensor(tc.name)
			require.NoError(t, err)
			got, err := tensor.Float32s()
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSaveRejectsBadSources(t *testing.T) {
	ok := Float32Source("ok", []int{1}, []float32{1})
	tests := []struct {
		name    string
		sources []Source
		want    string
	}{
		{"duplicate name", []Source{ok, ok}, `tensor "ok": name appears twice`},
		{"empty name", []Source{Float32Source("", []int{1}, []float32{1})}, "name must be non-empty"},
		{"reserved name", []Source{Float32Source("__metadata__", []int{1}, []float32{1})}, "name must be non-empty"},
		{"invalid UTF-8 name", []Source{Float32Source("\xff", []int{1}, []float32{1})}, "valid UTF-8"},
		{"unknown dtype", []Source{RawSource("w", "Q8", []int{1}, []byte{0})}, `tensor "w": unknown or unsupported dtype "Q8"`},
		{"negative shape", []Source{RawSource("w", F32, []int{-1}, nil)}, "negative dimension"},
		{"nil WriteData", []Source{{Name: "w", DType: F32, Shape: []int{1}}}, "WriteData is nil"},
		{"too few bytes", []Source{Float32Source("w", []int{3}, []float32{1, 2})}, `tensor "w": WriteData wrote 8 bytes, shape [3] of F32 needs 12`},
		{"too many bytes", []Source{Float32Source("w", []int{1}, []float32{1, 2})}, `tensor "w": WriteData wrote more than the 4 bytes`},
		{"WriteData fails", []Source{ok, {Name: "w", DType: U8, Shape: []int{1}, WriteData: func(io.Writer) error {
			return errors.New("device lost")
		}}}, `tensor "w": device lost`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "m.safetensors")
			err := Save(path, tc.sources, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), path)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries, "a failed save leaves neither the file nor a temporary")
		})
	}
}

func TestSaveFailureKeepsPreviousFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	require.NoError(t, Save(path, []Source{Float32Source("w", []int{1}, []float32{1})}, nil))
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Error(t, Save(path, []Source{Float32Source("w", []int{2}, []float32{1})}, nil))
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after)
}

func TestPlanShards(t *testing.T) {
	// Tensors named by their F32 element count; sizes are 4× that in bytes.
	tests := []struct {
		name  string
		sizes []int
		max   int64
		want  [][]int
	}{
		{"no limit", []int{5, 5, 5}, 0, [][]int{{5, 5, 5}}},
		{"all fit", []int{1, 2, 3}, 24, [][]int{{1, 2, 3}}},
		{"exact fill", []int{2, 2, 2, 2}, 16, [][]int{{2, 2}, {2, 2}}},
		{"tip over", []int{3, 2, 2}, 16, [][]int{{3}, {2, 2}}},
		{"big tensor gets its own shard, current one continues", []int{1, 10, 1}, 16, [][]int{{10}, {1, 1}}},
		{"hub docstring example", []int{6, 6, 2, 6, 2, 2}, 40, [][]int{{6}, {6, 2}, {6, 2, 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sources []Source
			for _, n := range tc.sizes {
				sources = append(sources, Source{Name: "t", DType: F32, Shape: []int{n}})
			}
			var got [][]int
			for _, shard := range planShards(sources, tc.max) {
				var sizes []int
				for _, s := range shard {
					sizes = append(sizes, s.Shape[0])
				}
				got = append(got, sizes)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSaveCheckpointShardedRoundTrip(t *testing.T) {
	dir := t.TempDir()
	var sources []Source
	for i, name := range []string{"z.weight", "a.weight", "m.bias", "b.big"} {
		n := []int{4, 4, 2, 20}[i]
		values := make([]float32, n)
		for j := range values {
			values[j] = float32(i*100 + j)
		}
		sources = append(sources, Float32Source(name, []int{n}, values))
	}
	files, err := SaveCheckpoint(dir, sources, SaveOptions{MaxShardSize: 32, Metadata: map[string]string{"step": "7"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
		"model-00003-of-00003.safetensors", "model.safetensors.index.json"}, files)

	raw, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	require.NoError(t, err)
	var idx struct {
		Metadata  map[string]int64  `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	require.NoError(t, json.Unmarshal(raw, &idx))
	assert.Equal(t, map[string]int64{"total_size": 120, "total_parameters": 30}, idx.Metadata)
	assert.Equal(t, map[string]string{
		"z.weight": "model-00001-of-00003.safetensors", "a.weight": "model-00001-of-00003.safetensors",
		// As in huggingface_hub, the oversized tensor is emitted as a shard of
		// its own before the still-open shard holding m.bias.
		"b.big": "model-00002-of-00003.safetensors", "m.bias": "model-00003-of-00003.safetensors",
	}, idx.WeightMap)

	c, err := OpenDir(dir)
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, map[string]string{"format": "pt", "step": "7"}, c.Metadata())
	for i, name := range []string{"z.weight", "a.weight", "m.bias", "b.big"} {
		tensor, err := c.Tensor(name)
		require.NoError(t, err)
		values, err := tensor.Float32s()
		require.NoError(t, err)
		assert.Equal(t, float32(i*100), values[0], name)
	}
}

func TestSaveCheckpointRemovesStaleFiles(t *testing.T) {
	dir := t.TempDir()
	src := func(n int) []Source {
		var out []Source
		for i := range n {
			out = append(out, Float32Source(string(rune('a'+i)), []int{1}, []float32{float32(i)}))
		}
		return out
	}
	unrelated := filepath.Join(dir, "model-00001-of-00002.bin")
	require.NoError(t, os.WriteFile(unrelated, nil, 0o644))

	steps := []struct {
		tensors int
		max     int64
		want    []string
	}{
		{3, 4, []string{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json"}},
		{2, 4, []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"}},
		{2, 0, []string{"model.safetensors"}},
		{3, 8, []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"}},
	}
	for _, step := range steps {
		files, err := SaveCheckpoint(dir, src(step.tensors), SaveOptions{MaxShardSize: step.max})
		require.NoError(t, err)
		assert.Equal(t, step.want, files)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		var got []string
		for _, e := range entries {
			got = append(got, e.Name())
		}
		assert.ElementsMatch(t, append([]string{"model-00001-of-00002.bin"}, step.want...), got)
		c, err := OpenDir(dir)
		require.NoError(t, err)
		assert.Len(t, c.Names(), step.tensors)
		require.NoError(t, c.Close())
	}
}

func TestSaveCheckpointOptions(t *testing.T) {
	tests := []struct {
		name string
		opts SaveOptions
		want string
	}{
		{"base without extension", SaveOptions{BaseName: "model.bin"}, "must be a file name ending in .safetensors"},
		{"base with directory", SaveOptions{BaseName: "sub/model.safetensors"}, "must be a file name"},
		{"negative shard size", SaveOptions{MaxShardSize: -1}, "negative MaxShardSize"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SaveCheckpoint(t.TempDir(), nil, tc.opts)
			assert.ErrorContains(t, err, tc.want)
		})
	}

	// No tensors at all still gives a loadable (empty) file.
	dir := t.TempDir()
	files, err := SaveCheckpoint(dir, nil, SaveOptions{BaseName: "adapter_model.safetensors", MaxShardSize: 10})
	require.NoError(t, err)
	assert.Equal(t, []string{"adapter_model.safetensors"}, files)
	c, err := OpenCheckpoint(dir, "adapter_model.safetensors")
	require.NoError(t, err)
	assert.Empty(t, c.Names())
	require.NoError(t, c.Close())
}
