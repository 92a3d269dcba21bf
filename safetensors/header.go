package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxHeaderSize is the largest JSON header accepted, the same limit as the
// Rust safetensors library (100 MB).
const maxHeaderSize = 100_000_000

// metadataKey is the reserved header key holding the free-form string map.
const metadataKey = "__metadata__"

// ErrFormat is wrapped by every error about a malformed safetensors file,
// index or tensor description; test for it with errors.Is.
var ErrFormat = errors.New("invalid safetensors data")

// ErrNotFound is wrapped by the error returned when a tensor name is absent.
var ErrNotFound = errors.New("tensor not found")

// TensorInfo describes one tensor of a safetensors file.
type TensorInfo struct {
	// Name is the tensor's key in the header (the HF parameter name).
	Name string
	// DType is the element type.
	DType DType
	// Shape is the list of dimensions; empty for a 0-d scalar.
	Shape []int
	// Begin and End are the byte offsets of the data, relative to the start
	// of the data buffer that follows the header.
	Begin, End int64
}

// NumElements returns the product of the dimensions (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// ByteSize returns the size of the tensor's data in bytes.
func (t TensorInfo) ByteSize() int64 { return t.End - t.Begin }

// header is a parsed and validated safetensors header.
type header struct {
	metadata map[string]string
	tensors  []TensorInfo // sorted by name
	index    map[string]int
	dataBase int64 // file offset of the data buffer: 8 + header length
}

// formatErrorf returns an error wrapping ErrFormat, prefixed with the file name.
func formatErrorf(file, format string, args ...any) error {
	return fmt.Errorf("safetensors: %s: %w: %s", file, ErrFormat, fmt.Sprintf(format, args...))
}

// rawTensorInfo is the JSON form of a tensor entry.
type rawTensorInfo struct {
	DType       *string   `json:"dtype"`
	Shape       *[]int64  `json:"shape"`
	DataOffsets *[]uint64 `json:"data_offsets"`
}

// parseHeader parses and validates the header of a safetensors file whose
// whole content is buf. file names the file in errors. It checks everything
// the Python library checks: header bounds, JSON syntax, known dtypes, shapes,
// offsets consistent with shape×dtype size, and tensors covering the data
// buffer contiguously without holes or overlaps.
func parseHeader(file string, buf []byte) (*header, error) {
	if len(buf) < 8 {
		return nil, formatErrorf(file, "file is %d bytes, shorter than the 8-byte header length prefix", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf[:8])
	if n > maxHeaderSize {
		return nil, formatErrorf(file, "header length %d exceeds the %d-byte limit", n, maxHeaderSize)
	}
	if n > uint64(len(buf)-8) {
		return nil, formatErrorf(file, "header length %d claims more bytes than the %d that follow the length prefix", n, len(buf)-8)
	}
	raw := buf[8 : 8+n]
	if !utf8.Valid(raw) {
		return nil, formatErrorf(file, "header is not valid UTF-8")
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, formatErrorf(file, "header does not start with '{'")
	}
	h := &header{metadata: map[string]string{}, index: map[string]int{}, dataBase: int64(8 + n)}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil, formatErrorf(file, "invalid header JSON: %v", err)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, formatErrorf(file, "invalid header JSON: %v", err)
		}
		key, _ := tok.(string) // object keys are always strings
		if seen[key] {
			return nil, formatErrorf(file, "header key %q appears twice", key)
		}
		seen[key] = true
		if key == metadataKey {
			if err := decodeMetadata(dec, h.metadata); err != nil {
				return nil, formatErrorf(file, "invalid %s: %v", metadataKey, err)
			}
			continue
		}
		info, err := decodeTensorInfo(dec, key)
		if err != nil {
			return nil, formatErrorf(file, "tensor %q: %v", key, err)
		}
		h.tensors = append(h.tensors, info)
	}
	if _, err := dec.Token(); err != nil {
		return nil, formatErrorf(file, "invalid header JSON: %v", err)
	}
	if rest := bytes.TrimLeft(raw[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, formatErrorf(file, "unexpected bytes after the header JSON object")
	}
	if err := checkLayout(h.tensors, int64(len(buf))-h.dataBase); err != nil {
		return nil, formatErrorf(file, "%v", err)
	}
	sort.Slice(h.tensors, func(i, j int) bool { return h.tensors[i].Name < h.tensors[j].Name })
	for i, t := range h.tensors {
		h.index[t.Name] = i
	}
	return h, nil
}

// decodeMetadata decodes the __metadata__ value, which must be an object of
// strings (JSON null counts as absent, as in the Python library).
func decodeMetadata(dec *json.Decoder, into map[string]string) error {
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("value of %q is not a string", k)
		}
		into[k] = s
	}
	return nil
}

// decodeTensorInfo decodes one tensor entry and checks that its dtype is
// known, its shape non-negative and its byte count equal to shape×dtype size.
func decodeTensorInfo(dec *json.Decoder, name string) (TensorInfo, error) {
	var r rawTensorInfo
	if err := dec.Decode(&r); err != nil {
		return TensorInfo{}, fmt.Errorf("invalid entry: %v", err)
	}
	if r.DType == nil || r.Shape == nil || r.DataOffsets == nil {
		return TensorInfo{}, errors.New("entry needs dtype, shape and data_offsets")
	}
	info := TensorInfo{Name: name, DType: DType(*r.DType)}
	if !info.DType.Valid() {
		return TensorInfo{}, fmt.Errorf("unknown or unsupported dtype %q", *r.DType)
	}
	if len(*r.DataOffsets) != 2 {
		return TensorInfo{}, fmt.Errorf("data_offsets has %d values, want [begin, end]", len(*r.DataOffsets))
	}
	begin, end := (*r.DataOffsets)[0], (*r.DataOffsets)[1]
	if begin > math.MaxInt64 || end > math.MaxInt64 {
		return TensorInfo{}, fmt.Errorf("data_offsets [%d, %d] out of range", begin, end)
	}
	info.Begin, info.End = int64(begin), int64(end)
	if info.End < info.Begin {
		return TensorInfo{}, fmt.Errorf("data_offsets [%d, %d] end before begin", begin, end)
	}
	want, err := byteSize(info.DType, *r.Shape)
	if err != nil {
		return TensorInfo{}, err
	}
	info.Shape = make([]int, len(*r.Shape))
	for i, d := range *r.Shape {
		info.Shape[i] = int(d)
	}
	if got := info.End - info.Begin; got != want {
		return TensorInfo{}, fmt.Errorf("data_offsets [%d, %d] span %d bytes but shape %v of %s needs %d",
			begin, end, got, info.Shape, info.DType, want)
	}
	return info, nil
}

// byteSize returns the data size of a tensor of dtype and shape, rejecting
// negative dimensions and sizes that overflow int64.
func byteSize(dtype DType, shape []int64) (int64, error) {
	n := int64(dtype.Size())
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d > 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("shape %v of %s overflows the addressable size", shape, dtype)
		}
		n *= d
	}
	return n, nil
}

// checkLayout checks that the tensors tile the data buffer of dataLen bytes
// exactly: sorted by offset, each starts where the previous one ended, the
// first at 0 and the last at dataLen.
func checkLayout(tensors []TensorInfo, dataLen int64) error {
	byOffset := slices.Clone(tensors)
	sort.SliceStable(byOffset, func(i, j int) bool {
		a, b := byOffset[i], byOffset[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.End < b.End
	})
	var end int64
	prev := ""
	for _, t := range byOffset {
		switch {
		case t.Begin > end && prev == "":
			return fmt.Errorf("tensor %q starts at data offset %d: the %d bytes before it belong to no tensor (tensors must tile the data buffer without holes)", t.Name, t.Begin, t.Begin)
		case t.Begin > end:
			return fmt.Errorf("tensor %q starts at data offset %d but tensor %q ends at %d: a hole of %d bytes (tensors must tile the data buffer without holes)", t.Name, t.Begin, prev, end, t.Begin-end)
		case t.Begin < end:
			return fmt.Errorf("tensor %q at data offsets [%d, %d] overlaps tensor %q ending at %d", t.Name, t.Begin, t.End, prev, end)
		}
		end, prev = t.End, t.Name
	}
	switch {
	case end > dataLen:
		return fmt.Errorf("data truncated: tensors need %d bytes of data but the file holds %d", end, dataLen)
	case end < dataLen:
		return fmt.Errorf("%d bytes of data after the last tensor belong to no tensor", dataLen-end)
	}
	return nil
}

// encodeHeader returns the complete header (length prefix, JSON, space
// padding to a multiple of 8) for tensors laid out in the given order, exactly
// as the Python library writes it: compact JSON, __metadata__ first (keys
// sorted here), then the tensors in data order. It also fills in each
// tensor's Begin and End.
func encodeHeader(metadata map[string]string, tensors []TensorInfo) []byte {
	var b strings.Builder
	b.WriteByte('{')
	if len(metadata) > 0 {
		writeJSONString(&b, metadataKey)
		b.WriteString(":{")
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, metadata[k])
		}
		b.WriteByte('}')
	}
	var offset int64
	for i := range tensors {
		t := &tensors[i]
		if i > 0 || len(metadata) > 0 {
			b.WriteByte(',')
		}
		size := t.NumElements() * int64(t.DType.Size())
		t.Begin, t.End = offset, offset+size
		offset += size
		writeJSONString(&b, t.Name)
		b.WriteString(`:{"dtype":`)
		writeJSONString(&b, string(t.DType))
		b.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, t.Begin, t.End)
	}
	b.WriteByte('}')
	n := b.Len()
	n += (8 - n%8) % 8
	out := make([]byte, 8, 8+n)
	binary.LittleEndian.PutUint64(out, uint64(n))
	out = append(out, b.String()...)
	for len(out) < 8+n {
		out = append(out, ' ')
	}
	return out
}

// writeJSONString writes s as a JSON string the way serde_json does: only
// '"', '\\' and control characters are escaped.
func writeJSONString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xF])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}
