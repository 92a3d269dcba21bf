package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Source supplies one tensor to a writer. Only its description is needed up
// front (the header precedes the data); WriteData is called once, when the
// writer reaches the tensor, so a caller can produce data one tensor at a
// time (for example fetching it from an accelerator) instead of holding a
// whole model in memory.
type Source struct {
	// Name is the tensor's key (the HF parameter name): non-empty, valid
	// UTF-8, not "__metadata__", unique within a save.
	Name string
	// DType is the element type written in the header.
	DType DType
	// Shape is the list of dimensions; empty for a 0-d scalar.
	Shape []int
	// WriteData writes the tensor's data, exactly NumElements×DType.Size()
	// little-endian bytes, to w. Writing more or fewer is an error.
	WriteData func(w io.Writer) error
}

// RawSource returns a Source writing data, which must already be in the
// little-endian layout of dtype.
func RawSource(name string, dtype DType, shape []int, data []byte) Source {
	return Source{Name: name, DType: dtype, Shape: shape, WriteData: func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}}
}

// Float32Source returns a Source writing values as F32.
func Float32Source(name string, shape []int, values []float32) Source {
	return Source{Name: name, DType: F32, Shape: shape, WriteData: func(w io.Writer) error {
		return writeChunked(w, len(values), 4, func(dst []byte, i int) {
			binary.LittleEndian.PutUint32(dst, math.Float32bits(values[i]))
		})
	}}
}

// BFloat16Source returns a Source writing values as BF16, converted with
// round-to-nearest-even exactly as torch's float→bfloat16 cast (see
// Float32ToBFloat16).
func BFloat16Source(name string, shape []int, values []float32) Source {
	return Source{Name: name, DType: BF16, Shape: shape, WriteData: func(w io.Writer) error {
		return writeChunked(w, len(values), 2, func(dst []byte, i int) {
			binary.LittleEndian.PutUint16(dst, Float32ToBFloat16(values[i]))
		})
	}}
}

// BFloat16BitsSource returns a Source writing raw bfloat16 bits as BF16, so
// a bf16 model can be saved without a round trip through float32.
func BFloat16BitsSource(name string, shape []int, bits []uint16) Source {
	return Source{Name: name, DType: BF16, Shape: shape, WriteData: func(w io.Writer) error {
		return writeChunked(w, len(bits), 2, func(dst []byte, i int) {
			binary.LittleEndian.PutUint16(dst, bits[i])
		})
	}}
}

// writeChunked encodes n elements of size bytes each through a fixed buffer,
// so converting a tensor never allocates a second full-size copy.
func writeChunked(w io.Writer, n, size int, put func(dst []byte, i int)) error {
	const chunk = 1 << 14
	buf := make([]byte, min(n, chunk)*size)
	for start := 0; start < n; start += chunk {
		m := min(chunk, n-start)
		for i := range m {
			put(buf[i*size:], start+i)
		}
		if _, err := w.Write(buf[:m*size]); err != nil {
			return err
		}
	}
	return nil
}

// Save writes tensors to a single safetensors file at path, laid out exactly
// as safetensors.torch.save_file lays them out (by descending dtype width,
// then by name), so the same tensors give a byte-identical file. metadata
// goes into __metadata__; "format" defaults to "pt", which transformers
// expects. The file is written under a temporary name in the same directory,
// synced and renamed, so a crash never leaves a partial file at path.
// WriteData callbacks run in layout order, one at a time.
func Save(path string, tensors []Source, metadata map[string]string) error {
	if err := checkSources(path, tensors); err != nil {
		return err
	}
	return writeFile(path, tensors, withFormat(metadata))
}

// SaveOptions configures SaveCheckpoint.
type SaveOptions struct {
	// BaseName is the checkpoint's file name, DefaultBaseName when empty;
	// PEFT adapters use "adapter_model.safetensors". It must end in
	// ".safetensors".
	BaseName string
	// MaxShardSize is the largest number of tensor bytes per shard; 0 means
	// never shard. A tensor larger than the limit gets a shard of its own.
	MaxShardSize int64
	// Metadata goes into every file's __metadata__ ("format" defaults to
	// "pt").
	Metadata map[string]string
}

// SaveCheckpoint writes tensors into dir the way transformers'
// save_pretrained does and returns the names of the files written, relative
// to dir. Tensors are assigned to shards in the given order with
// huggingface_hub's algorithm: a shard is closed when the next tensor would
// push it over MaxShardSize. One shard gives dir/BaseName; several give
// "model-00001-of-00003.safetensors", ... plus "model.safetensors.index.json"
// with metadata.total_size (the sum of tensor bytes), metadata.total_parameters
// and a sorted weight_map. Shards are written one after another, each through
// a temporary file. After a successful save, files left by an earlier save of
// the same base name that would confuse a loader are removed: stale shards
// ("model-0000i-of-0000n.safetensors" not written now), and the single file
// or the index, whichever this save did not write.
func SaveCheckpoint(dir string, tensors []Source, opts SaveOptions) ([]string, error) {
	base := opts.BaseName
	if base == "" {
		base = DefaultBaseName
	}
	if !strings.HasSuffix(base, ".safetensors") || base != filepath.Base(base) {
		return nil, fmt.Errorf("safetensors: base name %q must be a file name ending in .safetensors", base)
	}
	if opts.MaxShardSize < 0 {
		return nil, fmt.Errorf("safetensors: negative MaxShardSize %d", opts.MaxShardSize)
	}
	if err := checkSources(filepath.Join(dir, base), tensors); err != nil {
		return nil, err
	}
	metadata := withFormat(opts.Metadata)
	shards := planShards(tensors, opts.MaxShardSize)
	if len(shards) <= 1 {
		path := filepath.Join(dir, base)
		if err := writeFile(path, tensors, metadata); err != nil {
			return nil, err
		}
		return []string{base}, removeStale(dir, base, map[string]bool{base: true})
	}
	idx := struct {
		Metadata  map[string]int64  `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}{Metadata: map[string]int64{"total_size": 0, "total_parameters": 0}, WeightMap: map[string]string{}}
	written := map[string]bool{}
	var names []string
	for i, shard := range shards {
		name := shardName(base, i, len(shards))
		if err := writeFile(filepath.Join(dir, name), shard, metadata); err != nil {
			return nil, err
		}
		written[name] = true
		names = append(names, name)
		for _, s := range shard {
			n := numElements(s.Shape)
			idx.Metadata["total_parameters"] += n
			idx.Metadata["total_size"] += n * int64(s.DType.Size())
			idx.WeightMap[s.Name] = name
		}
	}
	indexName := base + IndexSuffix
	if err := WriteFileAtomic(filepath.Join(dir, indexName), func(w io.Writer) error {
		enc := json.NewEncoder(w) // like json.dumps(index, indent=2, sort_keys=True) + "\n"
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(idx)
	}); err != nil {
		return nil, err
	}
	written[indexName] = true
	names = append(names, indexName)
	return names, removeStale(dir, base, written)
}

// planShards splits tensors into shards exactly like huggingface_hub's
// split_state_dict_into_shards_factory.
func planShards(tensors []Source, maxSize int64) [][]Source {
	if maxSize <= 0 {
		return [][]Source{tensors}
	}
	var shards [][]Source
	var current []Source
	var currentSize int64
	for _, t := range tensors {
		size := numElements(t.Shape) * int64(t.DType.Size())
		if size > maxSize {
			shards = append(shards, []Source{t})
			continue
		}
		if currentSize+size > maxSize {
			shards = append(shards, current)
			current, currentSize = nil, 0
		}
		current = append(current, t)
		currentSize += size
	}
	if len(current) > 0 {
		shards = append(shards, current)
	}
	return shards
}

// removeStale deletes the files of an earlier save of base in dir that this
// save did not write: shards matching transformers' naming, the single file
// and the index.
func removeStale(dir, base string, written map[string]bool) error {
	stem := regexp.QuoteMeta(strings.TrimSuffix(base, ".safetensors"))
	shard := regexp.MustCompile(`^` + stem + `-\d{5}-of-\d{5}\.safetensors$`)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("safetensors: cleaning %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		stale := name == base || name == base+IndexSuffix || shard.MatchString(name)
		if !stale || written[name] || !e.Type().IsRegular() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("safetensors: removing stale %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// withFormat returns a copy of metadata with "format" set to "pt" unless the
// caller set it.
func withFormat(metadata map[string]string) map[string]string {
	m := maps.Clone(metadata)
	if m == nil {
		m = map[string]string{}
	}
	if _, ok := m["format"]; !ok {
		m["format"] = "pt"
	}
	return m
}

// checkSources validates tensor descriptions before anything is written.
func checkSources(path string, tensors []Source) error {
	seen := map[string]bool{}
	for _, t := range tensors {
		var problem string
		switch {
		case t.Name == "" || t.Name == metadataKey || !utf8.ValidString(t.Name):
			problem = "name must be non-empty valid UTF-8 other than " + metadataKey
		case seen[t.Name]:
			problem = "name appears twice"
		case !t.DType.Valid():
			problem = fmt.Sprintf("unknown or unsupported dtype %q", t.DType)
		case t.WriteData == nil:
			problem = "WriteData is nil"
		}
		if problem == "" {
			if _, err := byteSize(t.DType, toInt64s(t.Shape)); err != nil {
				problem = err.Error()
			}
		}
		if problem != "" {
			return fmt.Errorf("safetensors: %s: tensor %q: %s", path, t.Name, problem)
		}
		seen[t.Name] = true
	}
	return nil
}

// numElements returns the product of shape's dimensions.
func numElements(shape []int) int64 {
	return TensorInfo{Shape: shape}.NumElements()
}

// writeFile writes one safetensors file from already checked sources.
func writeFile(path string, tensors []Source, metadata map[string]string) error {
	ordered := slices.Clone(tensors)
	slices.SortStableFunc(ordered, func(a, b Source) int {
		if ra, rb := a.DType.rank(), b.DType.rank(); ra != rb {
			return rb - ra
		}
		return strings.Compare(a.Name, b.Name)
	})
	infos := make([]TensorInfo, len(ordered))
	for i, t := range ordered {
		infos[i] = TensorInfo{Name: t.Name, DType: t.DType, Shape: t.Shape}
	}
	header := encodeHeader(metadata, infos)
	return WriteFileAtomic(path, func(w io.Writer) error {
		if _, err := w.Write(header); err != nil {
			return err
		}
		for i, t := range ordered {
			cw := &exactWriter{w: w, left: infos[i].ByteSize()}
			if err := t.WriteData(cw); err != nil {
				return fmt.Errorf("tensor %q: %w", t.Name, err)
			}
			if cw.left != 0 {
				return fmt.Errorf("tensor %q: WriteData wrote %d bytes, shape %v of %s needs %d",
					t.Name, infos[i].ByteSize()-cw.left, t.Shape, t.DType, infos[i].ByteSize())
			}
		}
		return nil
	})
}

// exactWriter passes writes through until left bytes have been written and
// refuses to write more.
type exactWriter struct {
	w    io.Writer
	left int64
}

// Write implements io.Writer.
func (e *exactWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > e.left {
		return 0, fmt.Errorf("WriteData wrote more than the %d bytes its shape and dtype allow", e.left)
	}
	n, err := e.w.Write(p)
	e.left -= int64(n)
	return n, err
}

// WriteFileAtomic writes path through a temporary file in the same directory
// that is synced and renamed into place only when fill succeeds, so readers
// (and a run killed mid-write) never see half a file. Checkpoint writers
// beside this package (config.json, adapters) use it too.
func WriteFileAtomic(path string, fill func(w io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("writing %s: %w", path, err)
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := fill(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
