package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Row is one record of a dataset: column name → the column's value as JSON.
// Keeping values as JSON keeps object key order (chat templates that call
// `tojson` depend on it) and lets every source share one representation.
type Row map[string]json.RawMessage

// Source yields the rows of one split of one dataset, in a fixed order.
// Implementations must be safe to scan more than once; they need not be safe
// for concurrent use.
type Source interface {
	// Name identifies the source in errors and logs (a file, directory or Hub id).
	Name() string
	// Len returns the number of rows. It may scan the source once.
	Len(ctx context.Context) (int, error)
	// Scan calls fn for every row in order with its 0-based index. Memory use
	// does not grow with the number of rows: Parquet is read row group by row
	// group, JSON Lines line by line. An error from fn stops the scan and is
	// returned as is; errors of the source name the file and the row.
	Scan(ctx context.Context, fn func(index int, row Row) error) error
}

// DatasetRef names one split of a dataset, as a recipe does.
type DatasetRef struct {
	// ID is a Hub dataset id ("HuggingFaceH4/ultrachat_200k") or a local path.
	ID string
	// Config is the dataset configuration ("" or "default" for the default one).
	Config string
	// Split is the split name ("train", "train_sft", …); "" means "train".
	Split string
}

func (r DatasetRef) String() string {
	s := r.ID
	if r.Config != "" {
		s += " (config " + r.Config + ")"
	}
	return s + " split " + r.split()
}

func (r DatasetRef) split() string {
	if r.Split == "" {
		return "train"
	}
	return r.Split
}

// Loader opens the split a DatasetRef names. LocalLoader reads files and
// directories; a Hub client plugs in by downloading a snapshot and returning
// OpenDir on it.
type Loader interface {
	Open(ctx context.Context, ref DatasetRef) (Source, error)
}

// LocalLoader resolves dataset ids as paths: a data file (the split must then
// be "train", as for Hugging Face's `load_dataset("json", data_files=…)`) or a
// directory in the Hub's dataset layout (see OpenDir). Relative ids are taken
// relative to Root ("" for the working directory).
type LocalLoader struct {
	Root string
}

// Open implements Loader.
func (l LocalLoader) Open(_ context.Context, ref DatasetRef) (Source, error) {
	path := ref.ID
	if !filepath.IsAbs(path) && l.Root != "" {
		path = filepath.Join(l.Root, path)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", ref, err)
	}
	if !st.IsDir() {
		if ref.split() != "train" {
			return nil, fmt.Errorf("dataset %s: a single file holds only the split \"train\"", ref)
		}
		return OpenFile(path)
	}
	return OpenDir(path, ref.Config, ref.split())
}

// OpenFile opens one data file by its extension: .jsonl/.ndjson (JSON Lines),
// .json (an array of objects, or an object of equal-length column arrays) or
// .parquet.
func OpenFile(path string) (Source, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".ndjson":
		return &jsonlSource{path: path, count: -1}, nil
	case ".json":
		return &jsonSource{path: path, count: -1}, nil
	case ".parquet":
		return &parquetSource{path: path}, nil
	}
	return nil, fmt.Errorf("%s: unsupported data file (want .jsonl, .ndjson, .json or .parquet)", path)
}

// Concat returns a source that yields the rows of each source in turn, under
// one name (a directory's shards, for example). Indices run across sources.
func Concat(name string, sources ...Source) Source {
	return &concatSource{name: name, parts: sources}
}

type concatSource struct {
	name  string
	parts []Source
}

func (c *concatSource) Name() string { return c.name }

func (c *concatSource) Len(ctx context.Context) (int, error) {
	total := 0
	for _, p := range c.parts {
		n, err := p.Len(ctx)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

func (c *concatSource) Scan(ctx context.Context, fn func(int, Row) error) error {
	base := 0
	for _, p := range c.parts {
		n := 0
		err := p.Scan(ctx, func(i int, r Row) error {
			n = i + 1
			return fn(base+i, r)
		})
		if err != nil {
			return err
		}
		base += n
	}
	return nil
}

var dataExts = map[string]bool{".parquet": true, ".jsonl": true, ".ndjson": true, ".json": true}

// shardSuffix matches what may follow a split name in a data file name:
// "-00000-of-00002", "-0000", "_3" or nothing.
var shardSuffix = regexp.MustCompile(`^([-_.]\d+(-of-\d+)?)?$`)

// OpenDir opens split of config in a directory laid out as Hub datasets are.
// The directory searched is dir/config or dir/data/config when config names
// such a folder, else dir and dir/data. In it, the split's files are
// {split}.{ext}, {split}-00000-of-00002.{ext} (and other numbered shards) and
// every data file under a {split}/ or partial-{split}/ folder (the layout of
// the Hub's Parquet conversion, config/split/0000.parquet). A directory whose
// data files carry no split name at all holds only "train". Shards are read in
// name order.
func OpenDir(dir, config, split string) (Source, error) {
	if split == "" {
		split = "train"
	}
	var bases []string
	if config != "" {
		for _, b := range []string{filepath.Join(dir, config), filepath.Join(dir, "data", config)} {
			if isDir(b) {
				bases = append(bases, b)
			}
		}
		if len(bases) == 0 && config != "default" {
			return nil, fmt.Errorf("dataset %s: no folder for config %q", dir, config)
		}
	}
	if len(bases) == 0 {
		bases = []string{dir, filepath.Join(dir, "data")}
	}
	var files []string
	var unnamed []string // data files directly in a base that name no split
	for _, base := range bases {
		for _, sub := range []string{split, "partial-" + split} {
			found, err := dataFilesUnder(filepath.Join(base, sub))
			if err != nil {
				return nil, fmt.Errorf("dataset %s: %w", dir, err)
			}
			files = append(files, found...)
		}
		entries, err := os.ReadDir(base)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("dataset %s: %w", dir, err)
		}
		for _, e := range entries {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if e.IsDir() || !dataExts[ext] {
				continue
			}
			stem := strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))
			if strings.HasPrefix(stem, split) && shardSuffix.MatchString(stem[len(split):]) {
				files = append(files, filepath.Join(base, e.Name()))
			} else if !namesASplit(stem) {
				unnamed = append(unnamed, filepath.Join(base, e.Name()))
			}
		}
	}
	if len(files) == 0 && split == "train" {
		files = unnamed
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("dataset %s: no data files for config %q split %q", dir, config, split)
	}
	sort.Strings(files)
	parts := make([]Source, len(files))
	for i, f := range files {
		s, err := OpenFile(f)
		if err != nil {
			return nil, err
		}
		parts[i] = s
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return Concat(dir+" "+split, parts...), nil
}

// splitShard matches the stem of a split's shard, "{split}-00000-of-00001".
var splitShard = regexp.MustCompile(`^[A-Za-z][\w.]*-\d{5}-of-\d{5}$`)

// namesASplit reports whether a file stem names a split's shard.
func namesASplit(stem string) bool { return splitShard.MatchString(stem) }

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// dataFilesUnder lists the data files below dir (recursively); none when dir
// does not exist.
func dataFilesUnder(dir string) ([]string, error) {
	if !isDir(dir) {
		return nil, nil
	}
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && dataExts[strings.ToLower(filepath.Ext(p))] {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}
