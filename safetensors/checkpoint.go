package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultBaseName is the file name of a transformers model checkpoint. PEFT
// adapters use "adapter_model.safetensors".
const DefaultBaseName = "model.safetensors"

// IndexSuffix is appended to a base name to form the name of the index of a
// sharded checkpoint ("model.safetensors.index.json").
const IndexSuffix = ".index.json"

// index is the JSON form of model.safetensors.index.json.
type index struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// Checkpoint is a set of tensors stored either in one safetensors file or in
// shards listed by an index, as transformers and PEFT save them. Tensors are
// looked up by name across shards.
type Checkpoint struct {
	name   string  // dir/base, for error messages
	files  []*File // sorted by path
	byName map[string]*File
	names  []string // sorted
}

// OpenDir opens the model checkpoint in dir: model.safetensors, or
// model.safetensors.index.json and its shards.
func OpenDir(dir string) (*Checkpoint, error) {
	return OpenCheckpoint(dir, DefaultBaseName)
}

// OpenCheckpoint opens the checkpoint named base in dir (for example
// "adapter_model.safetensors"). Like transformers it prefers the single file
// dir/base and otherwise reads the index dir/base+IndexSuffix, opening every
// shard it names. It fails when neither exists (the error wraps
// fs.ErrNotExist), when the index names a missing shard, or when the index
// maps a tensor to a shard that does not contain it. Tensors present in a
// shard but absent from the index are ignored, as transformers ignores them.
func OpenCheckpoint(dir, base string) (*Checkpoint, error) {
	single := filepath.Join(dir, base)
	if _, err := os.Stat(single); err == nil {
		f, err := Open(single)
		if err != nil {
			return nil, err
		}
		c := &Checkpoint{name: single, files: []*File{f}, byName: map[string]*File{}, names: f.Names()}
		for _, n := range c.names {
			c.byName[n] = f
		}
		return c, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	indexPath := single + IndexSuffix
	raw, err := os.ReadFile(indexPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: checkpoint %s: neither %s nor %s exists: %w", single, base, base+IndexSuffix, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	var idx index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, formatErrorf(indexPath, "invalid index JSON: %v", err)
	}
	if idx.WeightMap == nil {
		return nil, formatErrorf(indexPath, "index has no weight_map")
	}
	c, err := openShards(dir, indexPath, idx.WeightMap)
	if err != nil {
		return nil, err
	}
	c.name = single
	return c, nil
}

// openShards opens the shards of weightMap and checks each one holds the
// tensors the index assigns to it.
func openShards(dir, indexPath string, weightMap map[string]string) (*Checkpoint, error) {
	byShard := map[string][]string{}
	for name, shard := range weightMap {
		byShard[shard] = append(byShard[shard], name)
	}
	shards := make([]string, 0, len(byShard))
	for s := range byShard {
		shards = append(shards, s)
	}
	sort.Strings(shards)
	c := &Checkpoint{byName: map[string]*File{}}
	for _, shard := range shards {
		if !filepath.IsLocal(filepath.FromSlash(shard)) {
			return nil, errors.Join(formatErrorf(indexPath, "shard name %q is not a path inside the checkpoint directory", shard), c.Close())
		}
		path := filepath.Join(dir, filepath.FromSlash(shard))
		f, err := Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("safetensors: %s names shard %s, which does not exist: %w", indexPath, shard, fs.ErrNotExist)
		}
		if err != nil {
			return nil, errors.Join(err, c.Close())
		}
		c.files = append(c.files, f)
		names := byShard[shard]
		sort.Strings(names)
		for _, name := range names {
			if _, ok := f.Info(name); !ok {
				err := formatErrorf(indexPath, "weight_map puts tensor %q in %s, which does not contain it", name, shard)
				return nil, errors.Join(err, c.Close())
			}
			c.byName[name] = f
		}
	}
	c.names = make([]string, 0, len(weightMap))
	for name := range weightMap {
		c.names = append(c.names, name)
	}
	sort.Strings(c.names)
	return c, nil
}

// Close closes every file of the checkpoint. Tensor data obtained from it
// becomes invalid (see File.Close).
func (c *Checkpoint) Close() error {
	var errs []error
	for _, f := range c.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// Files returns the paths of the checkpoint's safetensors files, sorted.
func (c *Checkpoint) Files() []string {
	out := make([]string, len(c.files))
	for i, f := range c.files {
		out[i] = f.Path()
	}
	return out
}

// Metadata returns the __metadata__ map of the checkpoint's first file
// (transformers writes the same map, {"format": "pt"}, into every shard).
func (c *Checkpoint) Metadata() map[string]string {
	if len(c.files) == 0 {
		return map[string]string{}
	}
	return c.files[0].Metadata()
}

// Names returns the names of all tensors, sorted.
func (c *Checkpoint) Names() []string { return append([]string{}, c.names...) }

// Info returns the description of the named tensor and whether it exists.
func (c *Checkpoint) Info(name string) (TensorInfo, bool) {
	f, ok := c.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Info(name)
}

// Tensor returns the named tensor from whichever shard holds it; its Data is
// valid until Close. The error wraps ErrNotFound when no shard has it.
func (c *Checkpoint) Tensor(name string) (Tensor, error) {
	f, ok := c.byName[name]
	if !ok {
		return Tensor{}, fmt.Errorf("safetensors: checkpoint %s: tensor %q: %w", c.name, name, ErrNotFound)
	}
	return f.Tensor(name)
}

// shardName returns transformers' shard name for shard i (0-based) of n:
// base "model.safetensors" gives "model-00001-of-00003.safetensors".
func shardName(base string, i, n int) string {
	stem, ext := base, ""
	if strings.HasSuffix(base, ".safetensors") {
		stem, ext = strings.TrimSuffix(base, ".safetensors"), ".safetensors"
	}
	return fmt.Sprintf("%s-%05d-of-%05d%s", stem, i+1, n, ext)
}
