package safetensors

import (
	"encoding/binary"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fileBytes builds a safetensors file from a header JSON and dataLen zero
// bytes of data.
func fileBytes(header string, dataLen int) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, make([]byte, dataLen)...)
}

// writeTemp writes content to a fresh file and returns its path.
func writeTemp(t *testing.T, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, content, 0o644))
	return path
}

func TestOpenRejectsInvalidFiles(t *testing.T) {
	const f32x2 = `"dtype":"F32","shape":[2]`
	tests := []struct {
		name    string
		content []byte
		want    string // substring of the error
	}{
		{"empty file", nil, "file is 0 bytes, shorter than the 8-byte header length prefix"},
		{"5 bytes", []byte{1, 2, 3, 4, 5}, "shorter than the 8-byte"},
		{"header longer than file", append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "header length 100 claims more bytes than the 2"},
		{"header over limit", binary.LittleEndian.AppendUint64(nil, 200_000_000), "exceeds the 100000000-byte limit"},
		{"invalid JSON", fileBytes(`{"a":`, 0), "invalid"},
		{"not an object", fileBytes(`[1]`, 0), "does not start with '{'"},
		{"invalid UTF-8", fileBytes("{\"\xff\":1}", 0), "not valid UTF-8"},
		{"trailing garbage", fileBytes(`{} x`, 0), "unexpected bytes after the header JSON"},
		{"duplicate key", fileBytes(`{"w":{`+f32x2+`,"data_offsets":[0,8]},"w":{`+f32x2+`,"data_offsets":[0,8]}}`, 8), `header key "w" appears twice`},
		{"metadata not strings", fileBytes(`{"__metadata__":{"format":1}}`, 0), `value of "format" is not a string`},
		{"unknown dtype", fileBytes(`{"w":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}}`, 1), `tensor "w": unknown or unsupported dtype "Q8"`},
		{"sub-byte dtype", fileBytes(`{"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, 1), `unsupported dtype "F4"`},
		{"missing shape", fileBytes(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, 4), `tensor "w": entry needs dtype, shape and data_offsets`},
		{"shape not ints", fileBytes(`{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, 4), `tensor "w": invalid entry`},
		{"negative dimension", fileBytes(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), "negative dimension"},
		{"overflowing shape", fileBytes(`{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}`, 4), "overflows"},
		{"three offsets", fileBytes(`{"w":{`+f32x2+`,"data_offsets":[0,4,8]}}`, 8), "data_offsets has 3 values"},
		{"end before begin", fileBytes(`{"w":{`+f32x2+`,"data_offsets":[8,0]}}`, 8), "end before begin"},
		{"wrong byte count", fileBytes(`{"w":{`+f32x2+`,"data_offsets":[0,4]}}`, 4), `tensor "w": data_offsets [0, 4] span 4 bytes but shape [2] of F32 needs 8`},
		{"overlap", fileBytes(`{"a":{`+f32x2+`,"data_offsets":[0,8]},"b":{`+f32x2+`,"data_offsets":[4,12]}}`, 12), `tensor "b" at data offsets [4, 12] overlaps tensor "a" ending at 8`},
		{"hole between", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, 12), `tensor "b" starts at data offset 8 but tensor "a" ends at 4: a hole of 4 bytes`},
		{"hole before first", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), `tensor "a" starts at data offset 4: the 4 bytes before it belong to no tensor`},
		{"truncated data", fileBytes(`{"a":{`+f32x2+`,"data_offsets":[0,8]}}`, 5), "data truncated: tensors need 8 bytes of data but the file holds 5"},
		{"trailing data", fileBytes(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 8), "4 bytes of data after the last tensor belong to no tensor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTemp(t, "bad.safetensors", tc.content)
			f, err := Open(path)
			require.Error(t, err)
			assert.Nil(t, f)
			assert.ErrorIs(t, err, ErrFormat)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), path, "the error names the file")
		})
	}
}

func TestOpenAcceptsEdgeCases(t *testing.T) {
	tests := []struct {
		name     string
		content  []byte
		names    []string
		metadata map[string]string
	}{
		{"no tensors", fileBytes(`{}`, 0), []string{}, map[string]string{}},
		{"metadata only, padded", fileBytes(`{"__metadata__":{"format":"pt"}}     `, 0), []string{}, map[string]string{"format": "pt"}},
		{"null metadata", fileBytes(`{"__metadata__":null}`, 0), []string{}, map[string]string{}},
		{"empty tensors share an offset", fileBytes(`{"z":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},"y":{"dtype":"I64","shape":[0],"data_offsets":[4,4]},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, 4), []string{"a", "y", "z"}, map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Open(writeTemp(t, "ok.safetensors", tc.content))
			require.NoError(t, err)
			defer f.Close()
			names := f.Names()
			if names == nil {
				names = []string{}
			}
			assert.Equal(t, tc.names, names)
			assert.Equal(t, tc.metadata, f.Metadata())
		})
	}
}

func TestOpenMissingFile(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "nope.safetensors"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestTensorLookupAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	require.NoError(t, Save(path, []Source{Float32Source("w", []int{2}, []float32{1, 2})}, nil))
	f, err := Open(path)
	require.NoError(t, err)

	info, ok := f.Info("w")
	require.True(t, ok)
	assert.Equal(t, TensorInfo{Name: "w", DType: F32, Shape: []int{2}, Begin: 0, End: 8}, info)
	assert.Equal(t, int64(2), info.NumElements())
	assert.Equal(t, int64(8), info.ByteSize())
	assert.Equal(t, []TensorInfo{info}, f.Tensors())
	_, ok = f.Info("nope")
	assert.False(t, ok)

	_, err = f.Tensor("nope")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), `"nope"`)

	require.NoError(t, f.Close())
	require.NoError(t, f.Close(), "Close is idempotent")
	_, err = f.Tensor("w")
	assert.ErrorContains(t, err, "file is closed")
	assert.Empty(t, f.Names())
}

func TestConversionErrors(t *testing.T) {
	tests := []struct {
		name   string
		tensor Tensor
		call   func(Tensor) error
		want   string
	}{
		{"int as float32", Tensor{TensorInfo: TensorInfo{Name: "ids", DType: I64, Shape: []int{1}}, Data: make([]byte, 8)},
			func(t Tensor) error { _, err := t.Float32s(); return err }, "cannot read I64 as float32"},
		{"float as int64", Tensor{TensorInfo: TensorInfo{Name: "w", DType: F32, Shape: []int{1}}, Data: make([]byte, 4)},
			func(t Tensor) error { _, err := t.Int64s(); return err }, "cannot read F32 as int64"},
		{"int as bfloat16", Tensor{TensorInfo: TensorInfo{Name: "m", DType: I8, Shape: []int{1}}, Data: make([]byte, 1)},
			func(t Tensor) error { _, err := t.BFloat16s(); return err }, "cannot read I8 as bfloat16"},
		{"u64 overflow", Tensor{TensorInfo: TensorInfo{Name: "u", DType: U64, Shape: []int{1}}, Data: []byte{0, 0, 0, 0, 0, 0, 0, 0x80}},
			func(t Tensor) error { _, err := t.Int64s(); return err }, "element 0 = 9223372036854775808 overflows int64"},
		{"short data", Tensor{TensorInfo: TensorInfo{Name: "w", DType: F32, Shape: []int{4}}, Data: make([]byte, 4)},
			func(t Tensor) error { _, err := t.Float32s(); return err }, "data is 4 bytes, shape [4] of F32 needs 16"},
		{"negative shape", Tensor{TensorInfo: TensorInfo{Name: "w", DType: F32, Shape: []int{-1}}},
			func(t Tensor) error { _, err := t.Int64s(); return err }, "negative dimension"},
		{"wrong destination", Tensor{TensorInfo: TensorInfo{Name: "w", DType: F32, Shape: []int{2}}, Data: make([]byte, 8)},
			func(t Tensor) error { return t.Float32sInto(make([]float32, 3)) }, "destination holds 3 values, tensor has 2"},
		{"wrong bf16 destination", Tensor{TensorInfo: TensorInfo{Name: "w", DType: BF16, Shape: []int{2}}, Data: make([]byte, 4)},
			func(t Tensor) error { return t.BFloat16sInto(make([]uint16, 1)) }, "destination holds 1 values"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.tensor.File = "x.safetensors"
			err := tc.call(tc.tensor)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), `x.safetensors: tensor "`+tc.tensor.Name+`"`)
		})
	}
}

func TestIntegerConversions(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		dtype DType
		data  []byte
		want  []int64
	}{
		{I64, le.AppendUint64(le.AppendUint64(nil, math.MaxUint64), 5), []int64{-1, 5}},
		{U64, le.AppendUint64(nil, math.MaxInt64), []int64{math.MaxInt64}},
		{I32, le.AppendUint32(le.AppendUint32(nil, math.MaxUint32), 7), []int64{-1, 7}},
		{U32, le.AppendUint32(nil, math.MaxUint32), []int64{math.MaxUint32}},
		{I16, le.AppendUint16(nil, 0x8000), []int64{-32768}},
		{U16, le.AppendUint16(nil, 0xFFFF), []int64{65535}},
		{I8, []byte{0xFF, 0x7F}, []int64{-1, 127}},
		{U8, []byte{0xFF, 0}, []int64{255, 0}},
		{BOOL, []byte{1, 0, 2}, []int64{1, 0, 1}},
	}
	for _, tc := range tests {
		t.Run(string(tc.dtype), func(t *testing.T) {
			tensor := Tensor{TensorInfo: TensorInfo{DType: tc.dtype, Shape: []int{len(tc.want)}}, Data: tc.data}
			got, err := tensor.Int64s()
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestCheckpointErrors(t *testing.T) {
	shard := func(t *testing.T, dir, name string, tensors ...string) {
		var srcs []Source
		for _, n := range tensors {
			srcs = append(srcs, Float32Source(n, []int{1}, []float32{1}))
		}
		require.NoError(t, Save(filepath.Join(dir, name), srcs, nil))
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantIs  error
		wantMsg string
	}{
		{"nothing there", func(*testing.T, string) {}, fs.ErrNotExist, "neither model.safetensors nor model.safetensors.index.json exists"},
		{"missing shard", func(t *testing.T, dir string) {
			shard(t, dir, "model-00001-of-00002.safetensors", "a")
			writeIndex(t, dir, `{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}`)
		}, fs.ErrNotExist, "names shard model-00002-of-00002.safetensors, which does not exist"},
		{"tensor absent from shard", func(t *testing.T, dir string) {
			shard(t, dir, "model-00001-of-00001.safetensors", "a")
			writeIndex(t, dir, `{"a":"model-00001-of-00001.safetensors","b":"model-00001-of-00001.safetensors"}`)
		}, ErrFormat, `weight_map puts tensor "b" in model-00001-of-00001.safetensors, which does not contain it`},
		{"shard outside dir", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"a":"../x.safetensors"}`)
		}, ErrFormat, `shard name "../x.safetensors" is not a path inside`},
		{"invalid index", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte("{"), 0o644))
		}, ErrFormat, "invalid index JSON"},
		{"index without weight_map", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte(`{"metadata":{}}`), 0o644))
		}, ErrFormat, "index has no weight_map"},
		{"bad shard", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "s.safetensors"), []byte("xx"), 0o644))
			writeIndex(t, dir, `{"a":"s.safetensors"}`)
		}, ErrFormat, "s.safetensors: invalid safetensors data: file is 2 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			c, err := OpenDir(dir)
			require.Error(t, err)
			assert.Nil(t, c)
			assert.ErrorIs(t, err, tc.wantIs)
			assert.Contains(t, err.Error(), tc.wantMsg)
		})
	}
}

// writeIndex writes a model.safetensors.index.json with the given weight_map.
func writeIndex(t *testing.T, dir, weightMap string) {
	t.Helper()
	content := `{"metadata":{"total_size":0},"weight_map":` + weightMap + "}"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte(content), 0o644))
}

func TestCheckpointLookup(t *testing.T) {
	dir := t.TempDir()
	// A sharded adapter whose second shard holds a tensor the index omits.
	require.NoError(t, Save(filepath.Join(dir, "adapter_model-00001-of-00002.safetensors"),
		[]Source{Float32Source("a", []int{1}, []float32{1})}, nil))
	require.NoError(t, Save(filepath.Join(dir, "adapter_model-00002-of-00002.safetensors"),
		[]Source{Float32Source("b", []int{2}, []float32{2, 3}), Float32Source("extra", nil, []float32{0})}, nil))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "adapter_model.safetensors.index.json"), []byte(
		`{"weight_map":{"a":"adapter_model-00001-of-00002.safetensors","b":"adapter_model-00002-of-00002.safetensors"}}`), 0o644))

	c, err := OpenCheckpoint(dir, "adapter_model.safetensors")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, c.Names())
	assert.Len(t, c.Files(), 2)
	info, ok := c.Info("b")
	require.True(t, ok)
	assert.Equal(t, []int{2}, info.Shape)
	b, err := c.Tensor("b")
	require.NoError(t, err)
	values, err := b.Float32s()
	require.NoError(t, err)
	assert.Equal(t, []float32{2, 3}, values)
	assert.True(t, strings.HasSuffix(b.File, "adapter_model-00002-of-00002.safetensors"))
	_, err = c.Tensor("extra")
	assert.ErrorIs(t, err, ErrNotFound)
	_, ok = c.Info("extra")
	assert.False(t, ok)
	require.NoError(t, c.Close())

	// The single file wins over the index, as in transformers.
	require.NoError(t, Save(filepath.Join(dir, "adapter_model.safetensors"),
		[]Source{Float32Source("single", []int{1}, []float32{4})}, map[string]string{"k": "v"}))
	c, err = OpenCheckpoint(dir, "adapter_model.safetensors")
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, []string{"single"}, c.Names())
	assert.Equal(t, map[string]string{"format": "pt", "k": "v"}, c.Metadata())
}
