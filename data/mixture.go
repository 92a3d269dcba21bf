package data

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
)

// MixtureConfig is a recipe's `dataset_mixture` block (the handbook's current
// format):
//
//	dataset_mixture:
//	  datasets:
//	    - id: HuggingFaceH4/ultrafeedback_binarized
//	      config: default
//	      split: train_prefs
//	      columns: [chosen, rejected]
//	      weight: 1.0
//	  seed: 0
//	  test_split_size: 2000
type MixtureConfig struct {
	Datasets []DatasetConfig `yaml:"datasets" mapstructure:"datasets" json:"datasets"`
	// Seed drives every shuffle of the mixture (default 0).
	Seed uint64 `yaml:"seed" mapstructure:"seed" json:"seed"`
	// TestSplitSize, when set, splits the mixture into train and test: a value in
	// (0, 1) is a fraction (ceil(fraction·rows) test rows), a whole number ≥ 1 a
	// row count, as `datasets`' train_test_split takes them.
	TestSplitSize *float64 `yaml:"test_split_size" mapstructure:"test_split_size" json:"test_split_size,omitempty"`
}

// DatasetConfig is one entry of MixtureConfig.Datasets.
type DatasetConfig struct {
	ID     string `yaml:"id" mapstructure:"id" json:"id"`
	Config string `yaml:"config" mapstructure:"config" json:"config,omitempty"`
	// Split defaults to "train".
	Split string `yaml:"split" mapstructure:"split" json:"split,omitempty"`
	// Columns, when set, are the only columns kept (select_columns); every entry
	// of a mixture that sets them must set the same ones.
	Columns []string `yaml:"columns" mapstructure:"columns" json:"columns,omitempty"`
	// Weight is the fraction of the split's rows used, in (0, 1]; nil means 1.
	Weight *float64 `yaml:"weight" mapstructure:"weight" json:"weight,omitempty"`
}

// LegacyMixtureConfig is the handbook's older data block, top-level recipe
// keys `dataset_mixer`, `dataset_splits` and `dataset_configs`:
//
//	dataset_mixer:
//	  HuggingFaceH4/ultrachat_200k: 1.0
//	dataset_splits: [train_sft, test_sft]
type LegacyMixtureConfig struct {
	// Mixer maps dataset ids to the fraction of their train splits used.
	Mixer map[string]float64 `yaml:"dataset_mixer" mapstructure:"dataset_mixer" json:"dataset_mixer"`
	// Order is the order of Mixer's keys as written in the recipe (a YAML
	// loader that sees it fills it in); when empty the ids are taken sorted.
	// Only the order of rows before the shuffle depends on it, and the pairing
	// with Configs.
	Order []string `yaml:"-" mapstructure:"-" json:"-"`
	// Splits are loaded from every dataset; a name containing "train" is a train
	// split, one containing "test" a test split (default [train, test]).
	Splits []string `yaml:"dataset_splits" mapstructure:"dataset_splits" json:"dataset_splits,omitempty"`
	// Configs are the datasets' config names, one per Mixer entry in Order.
	Configs []string `yaml:"dataset_configs" mapstructure:"dataset_configs" json:"dataset_configs,omitempty"`
	// ColumnsToKeep are kept when present, the rest dropped (default: the
	// handbook's messages, chosen, rejected, prompt, completion, label).
	ColumnsToKeep []string `yaml:"-" mapstructure:"-" json:"-"`
}

// LegacySeed is the seed of the legacy mixer's shuffles (fixed in the handbook).
const LegacySeed = 42

// DefaultColumnsToKeep are the columns the handbook's legacy scripts keep.
var DefaultColumnsToKeep = []string{"messages", "chosen", "rejected", "prompt", "completion", "label"}

// Dataset is a materialized split: rows in training order.
type Dataset struct {
	Rows []Row
	// Origins say where each row came from (for error messages).
	Origins []Origin
}

// Len returns the number of rows.
func (d *Dataset) Len() int {
	if d == nil {
		return 0
	}
	return len(d.Rows)
}

// Origin is where a row was read: the source's name and the row's index in it.
type Origin struct {
	Source string
	Row    int
}

func (o Origin) String() string { return fmt.Sprintf("%s: row %d", o.Source, o.Row) }

// SourceCount reports how many rows of one split entered a mixture.
type SourceCount struct {
	ID     string `json:"id"`
	Config string `json:"config,omitempty"`
	Split  string `json:"split"`
	// Total is the split's row count; Rows how many the mixture uses.
	Total int `json:"total"`
	Rows  int `json:"rows"`
}

// Mixture is a resolved recipe data block.
type Mixture struct {
	Train *Dataset
	// Test is nil when the mixture has no test split.
	Test    *Dataset
	Sources []SourceCount
}

// Validate checks the configuration without opening anything.
func (c MixtureConfig) Validate() error {
	if len(c.Datasets) == 0 {
		return fmt.Errorf("dataset_mixture: datasets is empty")
	}
	var firstCols []string
	for i, d := range c.Datasets {
		if d.ID == "" {
			return fmt.Errorf("dataset_mixture.datasets[%d]: id is empty", i)
		}
		if d.Weight != nil && !(*d.Weight > 0 && *d.Weight <= 1) {
			return fmt.Errorf("dataset_mixture.datasets[%d] (%s): weight %v must be in (0, 1]", i, d.ID, *d.Weight)
		}
		if d.Columns == nil {
			continue
		}
		if firstCols == nil {
			firstCols = sortedSet(d.Columns)
		} else if !slices.Equal(firstCols, sortedSet(d.Columns)) {
			return fmt.Errorf("dataset_mixture.datasets[%d] (%s): columns %v differ from %v; column names must be consistent across all dataset configs in a mixture", i, d.ID, d.Columns, firstCols)
		}
	}
	if c.TestSplitSize != nil {
		if _, err := testCount(*c.TestSplitSize, math.MaxInt); err != nil {
			return fmt.Errorf("dataset_mixture.test_split_size: %w", err)
		}
	}
	return nil
}

func sortedSet(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return slices.Compact(out)
}

// testCount is the number of test rows train_test_split takes from n rows.
func testCount(size float64, n int) (int, error) {
	switch {
	case size > 0 && size < 1:
		return int(math.Ceil(size * float64(n))), nil
	case size >= 1 && size == math.Trunc(size):
		if size >= float64(n) {
			return 0, fmt.Errorf("test size %v must be smaller than the %d rows", size, n)
		}
		return int(size), nil
	}
	return 0, fmt.Errorf("%v is neither a fraction in (0, 1) nor a whole row count", size)
}

// permutation is a deterministic shuffle of 0…n-1 for seed. Every call with the
// same seed starts afresh, as `datasets`' shuffle(seed=…) does.
func permutation(n int, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, 0x68616e64626f6f6b))
	return r.Perm(n)
}

// ref points at one row: which opened source and which row in it.
type ref struct{ src, row int }

// opened is a split opened for a mixture.
type opened struct {
	src     Source
	columns []string // kept columns; nil keeps all
	strict  bool     // columns must all be present
}

// Load resolves the mixture: for each entry select_columns, shuffle(seed),
// keep the first int(rows·weight) rows; concatenate; shuffle(seed); then split
// off TestSplitSize rows as the test set. Row counts equal the handbook's.
// logger may be nil.
func (c MixtureConfig) Load(ctx context.Context, loader Loader, logger *slog.Logger) (*Mixture, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	logger = orDiscard(logger)
	var srcs []opened
	var all []ref
	mix := &Mixture{}
	for i, d := range c.Datasets {
		dref := DatasetRef{ID: d.ID, Config: d.Config, Split: d.Split}
		src, err := loader.Open(ctx, dref)
		if err != nil {
			return nil, fmt.Errorf("dataset_mixture.datasets[%d]: %w", i, err)
		}
		n, err := src.Len(ctx)
		if err != nil {
			return nil, fmt.Errorf("dataset_mixture.datasets[%d]: %w", i, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("dataset_mixture.datasets[%d]: %s is empty", i, dref)
		}
		w := 1.0
		if d.Weight != nil {
			w = *d.Weight
		}
		k := int(float64(n) * w)
		perm := permutation(n, c.Seed)[:k]
		for _, r := range perm {
			all = append(all, ref{len(srcs), r})
		}
		srcs = append(srcs, opened{src: src, columns: d.Columns, strict: true})
		mix.Sources = append(mix.Sources, SourceCount{ID: d.ID, Config: d.Config, Split: dref.split(), Total: n, Rows: k})
		logger.Info("dataset mixture entry", "id", d.ID, "config", d.Config, "split", dref.split(), "weight", w, "rows", n, "kept", k)
		if k == 0 {
			logger.Warn("dataset mixture entry contributes no rows", "id", d.ID, "split", dref.split(), "rows", n, "weight", w)
		}
	}
	order := permutation(len(all), c.Seed)
	shuffled := make([]ref, len(all))
	for i, j := range order {
		shuffled[i] = all[j]
	}
	trainRefs, testRefs := shuffled, []ref(nil)
	if c.TestSplitSize != nil {
		nTest, err := testCount(*c.TestSplitSize, len(shuffled))
		if err != nil {
			return nil, fmt.Errorf("dataset_mixture.test_split_size with %d rows: %w", len(shuffled), err)
		}
		if len(shuffled)-nTest <= 0 {
			return nil, fmt.Errorf("dataset_mixture.test_split_size %v leaves no train rows of %d", *c.TestSplitSize, len(shuffled))
		}
		split := permutation(len(shuffled), c.Seed)
		testRefs = make([]ref, nTest)
		trainRefs = make([]ref, len(shuffled)-nTest)
		for i, j := range split {
			if i < nTest {
				testRefs[i] = shuffled[j]
			} else {
				trainRefs[i-nTest] = shuffled[j]
			}
		}
	}
	sets, err := materialize(ctx, srcs, trainRefs, testRefs)
	if err != nil {
		return nil, err
	}
	mix.Train = sets[0]
	if c.TestSplitSize != nil {
		mix.Test = sets[1]
	}
	logger.Info("dataset mixture", "train_rows", mix.Train.Len(), "test_rows", mix.Test.Len())
	return mix, nil
}

// Validate checks the legacy configuration without opening anything.
func (c LegacyMixtureConfig) Validate() error {
	if len(c.Mixer) == 0 {
		return fmt.Errorf("dataset_mixer is empty")
	}
	ids := c.ids()
	if len(ids) != len(c.Mixer) {
		return fmt.Errorf("dataset_mixer: order %v does not list its %d ids", c.Order, len(c.Mixer))
	}
	for _, id := range ids {
		if _, ok := c.Mixer[id]; !ok {
			return fmt.Errorf("dataset_mixer: order names %q, which the mixer lacks", id)
		}
		if c.Mixer[id] < 0 {
			return fmt.Errorf("dataset_mixer: %s: %v: dataset fractions cannot be negative", id, c.Mixer[id])
		}
		if c.Mixer[id] > 1 {
			return fmt.Errorf("dataset_mixer: %s: fraction %v is above 1", id, c.Mixer[id])
		}
	}
	if len(c.Configs) > 0 && len(c.Configs) != len(c.Mixer) {
		return fmt.Errorf("dataset_configs: %d names for %d datasets; the number of given dataset config names must be the same as the given number of datasets", len(c.Configs), len(c.Mixer))
	}
	if len(c.Configs) > 1 && len(c.Order) == 0 {
		return fmt.Errorf("dataset_configs: pairing %d config names with dataset_mixer needs the mixer's order (LegacyMixtureConfig.Order)", len(c.Configs))
	}
	for _, s := range c.splits() {
		if !strings.Contains(s, "train") && !strings.Contains(s, "test") {
			return fmt.Errorf("dataset_splits: split type %q not recognized as one of test or train", s)
		}
	}
	return nil
}

func (c LegacyMixtureConfig) ids() []string {
	if len(c.Order) > 0 {
		return c.Order
	}
	ids := make([]string, 0, len(c.Mixer))
	for id := range c.Mixer {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (c LegacyMixtureConfig) splits() []string {
	if len(c.Splits) == 0 {
		return []string{"train", "test"}
	}
	return c.Splits
}

// Load resolves the legacy mixer as the handbook's mix_datasets does: every
// split of every dataset is loaded and cut to the kept columns; each train
// split keeps its first int(fraction·rows) rows (no shuffle before the cut);
// test splits are never subsampled; train and test are each concatenated and
// shuffled with seed 42. logger may be nil.
//
// One deliberate difference: the handbook pairs fractions with train splits
// by position, which goes wrong when dataset_splits holds two train splits;
// here each train split uses its own dataset's fraction.
func (c LegacyMixtureConfig) Load(ctx context.Context, loader Loader, logger *slog.Logger) (*Mixture, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	logger = orDiscard(logger)
	keep := c.ColumnsToKeep
	if keep == nil {
		keep = DefaultColumnsToKeep
	}
	var srcs []opened
	var train, test []ref
	mix := &Mixture{}
	for i, id := range c.ids() {
		config := ""
		if len(c.Configs) > 0 {
			config = c.Configs[i]
		}
		frac := c.Mixer[id]
		for _, split := range c.splits() {
			dref := DatasetRef{ID: id, Config: config, Split: split}
			src, err := loader.Open(ctx, dref)
			if err != nil {
				return nil, fmt.Errorf("dataset_mixer: %w", err)
			}
			n, err := src.Len(ctx)
			if err != nil {
				return nil, fmt.Errorf("dataset_mixer: %w", err)
			}
			if n == 0 {
				return nil, fmt.Errorf("dataset_mixer: %s is empty", dref)
			}
			k := n
			isTrain := strings.Contains(split, "train")
			if isTrain {
				k = int(frac * float64(n))
			}
			for r := 0; r < k; r++ {
				if isTrain {
					train = append(train, ref{len(srcs), r})
				} else {
					test = append(test, ref{len(srcs), r})
				}
			}
			srcs = append(srcs, opened{src: src, columns: keep})
			mix.Sources = append(mix.Sources, SourceCount{ID: id, Config: config, Split: split, Total: n, Rows: k})
			logger.Info("dataset mixer entry", "id", id, "config", config, "split", split, "fraction", frac, "rows", n, "kept", k)
		}
	}
	shuffle := func(refs []ref) []ref {
		out := make([]ref, len(refs))
		for i, j := range permutation(len(refs), LegacySeed) {
			out[i] = refs[j]
		}
		return out
	}
	var hasTrain, hasTest bool
	for _, s := range c.splits() {
		hasTrain = hasTrain || strings.Contains(s, "train")
		hasTest = hasTest || !strings.Contains(s, "train")
	}
	sets, err := materialize(ctx, srcs, shuffle(train), shuffle(test))
	if err != nil {
		return nil, err
	}
	if hasTrain {
		mix.Train = sets[0]
	}
	if hasTest {
		mix.Test = sets[1]
	}
	logger.Info("dataset mixer", "train_rows", mix.Train.Len(), "test_rows", mix.Test.Len())
	return mix, nil
}

// Load reads the split a DatasetRef names through loader into memory, rows in their order, as
// datasets.load_dataset(path, split=split) does; every row must have the first row's columns.
// Use LocalLoader for files and directories, handbook.HubLoader to also resolve Hub dataset ids.
func Load(ctx context.Context, loader Loader, split DatasetRef) (*Dataset, error) {
	src, err := loader.Open(ctx, split)
	if err != nil {
		return nil, err
	}
	n, err := src.Len(ctx)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", split, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("dataset %s is empty", split)
	}
	refs := make([]ref, n)
	for i := range refs {
		refs[i] = ref{0, i}
	}
	sets, err := materialize(ctx, []opened{{src: src}}, refs)
	if err != nil {
		return nil, err
	}
	return sets[0], nil
}

// materialize reads the rows the ref lists name, each source scanned once,
// and returns one Dataset per list. Column sets must agree across sources.
func materialize(ctx context.Context, srcs []opened, lists ...[]ref) ([]*Dataset, error) {
	type slot struct{ list, pos int }
	wanted := make([]map[int][]slot, len(srcs))
	for i := range wanted {
		wanted[i] = map[int][]slot{}
	}
	out := make([]*Dataset, len(lists))
	for l, refs := range lists {
		out[l] = &Dataset{Rows: make([]Row, len(refs)), Origins: make([]Origin, len(refs))}
		for p, r := range refs {
			wanted[r.src][r.row] = append(wanted[r.src][r.row], slot{l, p})
		}
	}
	var firstCols []string
	var firstName string
	for s, o := range srcs {
		if len(wanted[s]) == 0 {
			continue
		}
		var cols []string
		err := o.src.Scan(ctx, func(i int, row Row) error {
			row, err := selectColumns(row, o)
			if err != nil {
				return fmt.Errorf("%s: row %d: %w", o.src.Name(), i, err)
			}
			if cols == nil {
				cols = sortedKeys(row)
			} else if got := sortedKeys(row); !slices.Equal(cols, got) {
				return fmt.Errorf("%s: row %d: columns %v differ from the first row's %v", o.src.Name(), i, got, cols)
			}
			for _, sl := range wanted[s][i] {
				out[sl.list].Rows[sl.pos] = row
				out[sl.list].Origins[sl.pos] = Origin{o.src.Name(), i}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if firstCols == nil {
			firstCols, firstName = cols, o.src.Name()
		} else if !slices.Equal(firstCols, cols) {
			return nil, fmt.Errorf("%s: columns %v differ from %v of %s; mixed datasets must share their columns (set columns: in the recipe)", o.src.Name(), cols, firstCols, firstName)
		}
	}
	return out, nil
}

func selectColumns(row Row, o opened) (Row, error) {
	if o.columns == nil {
		return row, nil
	}
	out := make(Row, len(o.columns))
	for _, c := range o.columns {
		v, ok := row[c]
		if !ok {
			if o.strict {
				return nil, fmt.Errorf("missing column %q (have %v)", c, sortedKeys(row))
			}
			continue
		}
		out[c] = v
	}
	return out, nil
}

func sortedKeys(row Row) []string {
	keys := make([]string, 0, len(row))
	for k := range row {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
