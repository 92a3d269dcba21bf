package safetensors

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseHeader feeds arbitrary bytes to the header parser and, when it
// accepts them, reads every tensor through every conversion: nothing may
// panic or index out of range.
func FuzzParseHeader(f *testing.F) {
	if golden, err := os.ReadFile(filepath.Join("testdata", "fixtures.safetensors")); err == nil {
		f.Add(golden)
	}
	f.Add(fileBytes(`{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, 4))
	f.Add(fileBytes(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U64","shape":[],"data_offsets":[0,8]}}`, 8))
	f.Add(fileBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHeader("fuzz", data)
		if err != nil {
			return
		}
		file := &File{path: "fuzz", data: data, header: h}
		for _, name := range file.Names() {
			tensor, err := file.Tensor(name)
			if err != nil {
				t.Fatalf("listed tensor %q: %v", name, err)
			}
			if int64(len(tensor.Data)) != tensor.ByteSize() {
				t.Fatalf("tensor %q: %d data bytes, info says %d", name, len(tensor.Data), tensor.ByteSize())
			}
			_, _ = tensor.Float32s()
			_, _ = tensor.BFloat16s()
			_, _ = tensor.Int64s()
		}
	})
}
