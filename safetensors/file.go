package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
)

// File is an open safetensors file, memory-mapped read-only so that tensor
// data is paged in on demand rather than copied. It is safe for concurrent
// readers. The file must not be truncated or rewritten in place while open.
type File struct {
	path   string
	data   []byte // the whole file, mapped
	header *header
}

// Open maps the safetensors file at path and validates its header: see
// ErrFormat for the checks. Close releases the mapping.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("safetensors: %s: not a regular file", path)
	}
	if st.Size() > math.MaxInt {
		return nil, fmt.Errorf("safetensors: %s: %d bytes do not fit in this platform's address space", path, st.Size())
	}
	data, err := mapFile(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("safetensors: mapping %s: %w", path, err)
	}
	h, err := parseHeader(path, data)
	if err != nil {
		return nil, errors.Join(err, unmapFile(data))
	}
	return &File{path: path, data: data, header: h}, nil
}

// Close releases the mapping. The Data of every Tensor obtained from f
// becomes invalid: reading it afterwards crashes the program, so copy (or
// convert) what must outlive the File first. Close is idempotent.
func (f *File) Close() error {
	if f.header == nil {
		return nil
	}
	data := f.data
	f.data, f.header = nil, nil
	if err := unmapFile(data); err != nil {
		return fmt.Errorf("safetensors: unmapping %s: %w", f.path, err)
	}
	return nil
}

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// Metadata returns a copy of the header's __metadata__ map (empty when the
// file has none).
func (f *File) Metadata() map[string]string {
	if f.header == nil {
		return map[string]string{}
	}
	return maps.Clone(f.header.metadata)
}

// Names returns the tensor names, sorted.
func (f *File) Names() []string {
	if f.header == nil {
		return nil
	}
	names := make([]string, len(f.header.tensors))
	for i, t := range f.header.tensors {
		names[i] = t.Name
	}
	return names
}

// Tensors returns the descriptions of all tensors, sorted by name.
func (f *File) Tensors() []TensorInfo {
	if f.header == nil {
		return nil
	}
	out := make([]TensorInfo, len(f.header.tensors))
	for i, t := range f.header.tensors {
		out[i] = t.clone()
	}
	return out
}

// Info returns the description of the named tensor and whether it exists.
func (f *File) Info(name string) (TensorInfo, bool) {
	if f.header == nil {
		return TensorInfo{}, false
	}
	i, ok := f.header.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.header.tensors[i].clone(), true
}

// Tensor returns the named tensor, its Data a zero-copy view of the mapping
// that is valid until Close. The error wraps ErrNotFound when the file has no
// such tensor.
func (f *File) Tensor(name string) (Tensor, error) {
	if f.header == nil {
		return Tensor{}, fmt.Errorf("safetensors: %s: tensor %q: file is closed", f.path, name)
	}
	i, ok := f.header.index[name]
	if !ok {
		return Tensor{}, fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, ErrNotFound)
	}
	info := f.header.tensors[i].clone()
	begin, end := f.header.dataBase+info.Begin, f.header.dataBase+info.End
	return Tensor{TensorInfo: info, File: f.path, Data: f.data[begin:end:end]}, nil
}

// clone returns a copy of t that shares no memory with it.
func (t TensorInfo) clone() TensorInfo {
	t.Shape = append([]int{}, t.Shape...)
	return t
}

// Tensor is a tensor read from a safetensors file.
type Tensor struct {
	TensorInfo
	// File is the path of the file holding the tensor, for error messages.
	File string
	// Data is the raw little-endian data, ByteSize() bytes. For tensors from
	// File.Tensor or Checkpoint.Tensor it is a read-only view of the memory
	// mapping: never write to it, and do not use it after Close.
	Data []byte
}

// errorf returns an error naming t's file and name.
func (t Tensor) errorf(format string, args ...any) error {
	return fmt.Errorf("safetensors: %s: tensor %q: %s", t.File, t.Name, fmt.Sprintf(format, args...))
}

// Float32s returns the tensor's values as float32. F32, BF16 and F16 convert
// exactly; F64 rounds to nearest. Other dtypes are an error.
func (t Tensor) Float32s() ([]float32, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	out := make([]float32, t.NumElements())
	if err := t.Float32sInto(out); err != nil {
		return nil, err
	}
	return out, nil
}

// Float32sInto is Float32s writing into dst, which must hold exactly
// NumElements() values, so a caller can fill an existing buffer.
func (t Tensor) Float32sInto(dst []float32) error {
	if err := t.checkDst(len(dst)); err != nil {
		return err
	}
	d := t.Data
	switch t.DType {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(d[4*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BFloat16ToFloat32(binary.LittleEndian.Uint16(d[2*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = Float16ToFloat32(binary.LittleEndian.Uint16(d[2*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:])))
		}
	default:
		return t.errorf("cannot read %s as float32 (want F32, BF16, F16 or F64)", t.DType)
	}
	return nil
}

// BFloat16s returns the tensor's values as raw bfloat16 bits, so a bf16
// checkpoint can stay bf16: BF16 data is copied unchanged; F32, F16 and F64
// convert with round-to-nearest-even as torch does (F64 first rounds to
// float32, as torch's double→bfloat16 cast does). Other dtypes are an error.
func (t Tensor) BFloat16s() ([]uint16, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	out := make([]uint16, t.NumElements())
	if err := t.BFloat16sInto(out); err != nil {
		return nil, err
	}
	return out, nil
}

// BFloat16sInto is BFloat16s writing into dst, which must hold exactly
// NumElements() values.
func (t Tensor) BFloat16sInto(dst []uint16) error {
	if err := t.checkDst(len(dst)); err != nil {
		return err
	}
	if t.DType == BF16 {
		for i := range dst {
			dst[i] = binary.LittleEndian.Uint16(t.Data[2*i:])
		}
		return nil
	}
	switch t.DType {
	case F32, F16, F64:
	default:
		return t.errorf("cannot read %s as bfloat16 (want BF16, F32, F16 or F64)", t.DType)
	}
	const chunk = 4096
	var buf [chunk]float32
	for start := 0; start < len(dst); start += chunk {
		n := min(chunk, len(dst)-start)
		part := t
		size := t.DType.Size()
		part.Data = t.Data[start*size : (start+n)*size]
		part.Shape = []int{n}
		if err := part.Float32sInto(buf[:n]); err != nil {
			return err
		}
		for i, v := range buf[:n] {
			dst[start+i] = Float32ToBFloat16(v)
		}
	}
	return nil
}

// Int64s returns the tensor's values as int64, from any integer dtype or
// BOOL (0 or 1). U64 values above math.MaxInt64 are an error, as are
// floating-point dtypes.
func (t Tensor) Int64s() ([]int64, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	out := make([]int64, t.NumElements())
	d := t.Data
	le := binary.LittleEndian
	switch t.DType {
	case I64:
		for i := range out {
			out[i] = int64(le.Uint64(d[8*i:]))
		}
	case U64:
		for i := range out {
			v := le.Uint64(d[8*i:])
			if v > math.MaxInt64 {
				return nil, t.errorf("element %d = %d overflows int64", i, v)
			}
			out[i] = int64(v)
		}
	case I32:
		for i := range out {
			out[i] = int64(int32(le.Uint32(d[4*i:])))
		}
	case U32:
		for i := range out {
			out[i] = int64(le.Uint32(d[4*i:]))
		}
	case I16:
		for i := range out {
			out[i] = int64(int16(le.Uint16(d[2*i:])))
		}
	case U16:
		for i := range out {
			out[i] = int64(le.Uint16(d[2*i:]))
		}
	case I8:
		for i := range out {
			out[i] = int64(int8(d[i]))
		}
	case U8:
		for i := range out {
			out[i] = int64(d[i])
		}
	case BOOL:
		for i := range out {
			if d[i] != 0 {
				out[i] = 1
			}
		}
	default:
		return nil, t.errorf("cannot read %s as int64 (want an integer dtype or BOOL)", t.DType)
	}
	return out, nil
}

// checkDst checks that a destination of n values matches the tensor.
func (t Tensor) checkDst(n int) error {
	if err := t.check(); err != nil {
		return err
	}
	if int64(n) != t.NumElements() {
		return t.errorf("destination holds %d values, tensor has %d", n, t.NumElements())
	}
	return nil
}

// check checks the shape and that the data length matches it, so conversions
// never index out of range, even for a hand-built Tensor.
func (t Tensor) check() error {
	want, err := byteSize(t.DType, toInt64s(t.Shape))
	if err != nil {
		return t.errorf("%v", err)
	}
	if int64(len(t.Data)) != want {
		return t.errorf("data is %d bytes, shape %v of %s needs %d", len(t.Data), t.Shape, t.DType, want)
	}
	return nil
}

// toInt64s converts a shape to int64 dimensions.
func toInt64s(shape []int) []int64 {
	out := make([]int64, len(shape))
	for i, d := range shape {
		out[i] = int64(d)
	}
	return out
}
