package data

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// legacyFixture writes three datasets shaped like the handbook's testing_*_small
// datasets: 100 train and 100 test rows each, prompt/completion columns.
func legacyFixture(t *testing.T) string {
	root := t.TempDir()
	for _, name := range []string{"testing_alpaca_small", "testing_self_instruct_small", "testing_codealpaca_small"} {
		writeJSONL(t, root, filepath.Join(name, "train.jsonl"), rowsN(100, name+" train"))
		writeJSONL(t, root, filepath.Join(name, "test.jsonl"), rowsN(100, name+" test"))
	}
	return root
}

// TestLegacyMixerCounts replays the handbook's legacy GetDatasetsTest expectations.
func TestLegacyMixerCounts(t *testing.T) {
	loader := LocalLoader{Root: legacyFixture(t)}
	const a, s, c = "testing_alpaca_small", "testing_self_instruct_small", "testing_codealpaca_small"
	tests := []struct {
		name             string
		mixer            map[string]float64
		splits           []string
		train, test      int
		wantErr          string
		trainNil, tstNil bool
	}{
		{name: "fractions", mixer: map[string]float64{a: 0.5, s: 0.3, c: 0.2}, train: 100, test: 300},
		{name: "unit fractions", mixer: map[string]float64{a: 1, s: 1, c: 1}, train: 300, test: 300},
		{name: "sum above unity", mixer: map[string]float64{a: 0.7, s: 0.4}, train: 110, test: 200},
		{name: "single test split", mixer: map[string]float64{a: 1}, splits: []string{"test"}, test: 100, trainNil: true},
		{name: "zero fraction keeps test", mixer: map[string]float64{a: 0, s: 1}, train: 100, test: 200},
		{name: "negative", mixer: map[string]float64{a: 0.7, s: -0.3}, wantErr: "dataset fractions cannot be negative"},
		{name: "above one", mixer: map[string]float64{a: 1.5}, wantErr: "above 1"},
		{name: "unknown split kind", mixer: map[string]float64{a: 1}, splits: []string{"validation"}, wantErr: "not recognized as one of test or train"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := LegacyMixtureConfig{Mixer: tc.mixer, Splits: tc.splits, ColumnsToKeep: []string{"prompt", "completion"}}
			mix, err := cfg.Load(context.Background(), loader, nil)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			if tc.trainNil {
				assert.Nil(t, mix.Train)
			} else {
				assert.Equal(t, tc.train, mix.Train.Len())
			}
			assert.Equal(t, tc.test, mix.Test.Len())
		})
	}
}

// TestLegacyTrainCutIsAPrefix checks the legacy cut keeps the first rows
// (no shuffle before selecting) and shuffles with seed 42 afterwards,
// deterministically.
func TestLegacyTrainCutIsAPrefix(t *testing.T) {
	loader := LocalLoader{Root: legacyFixture(t)}
	cfg := LegacyMixtureConfig{Mixer: map[string]float64{"testing_alpaca_small": 0.1}, Splits: []string{"train"}}
	mix, err := cfg.Load(context.Background(), loader, nil)
	require.NoError(t, err)
	require.Equal(t, 10, mix.Train.Len())
	seen := map[int]bool{}
	for _, o := range mix.Train.Origins {
		seen[o.Row] = true
	}
	for i := 0; i < 10; i++ {
		assert.True(t, seen[i], "row %d of the first 10 is kept", i)
	}
	again, err := cfg.Load(context.Background(), loader, nil)
	require.NoError(t, err)
	assert.Equal(t, mix.Train.Origins, again.Train.Origins)
	assert.NotEqual(t, 0, mix.Train.Origins[0].Row+mix.Train.Origins[1].Row-1, "order is shuffled")
}

func TestMixtureCountsAndDeterminism(t *testing.T) {
	root := t.TempDir()
	writeJSONL(t, root, "a/train.jsonl", rowsN(101, "a"))
	writeJSONL(t, root, "b/train.jsonl", rowsN(40, "b"))
	loader := LocalLoader{Root: root}
	cfg := MixtureConfig{
		Datasets: []DatasetConfig{
			{ID: "a", Columns: []string{"prompt", "completion"}, Weight: ptr(0.5)},
			{ID: "b", Columns: []string{"completion", "prompt"}, Weight: ptr(0.33)},
		},
		Seed:          7,
		TestSplitSize: ptr(0.1),
	}
	mix, err := cfg.Load(context.Background(), loader, nil)
	require.NoError(t, err)
	// int(101·0.5)=50, int(40·0.33)=13 → 63 rows; ceil(0.1·63)=7 test rows.
	assert.Equal(t, []SourceCount{{ID: "a", Split: "train", Total: 101, Rows: 50}, {ID: "b", Split: "train", Total: 40, Rows: 13}}, mix.Sources)
	assert.Equal(t, 56, mix.Train.Len())
	assert.Equal(t, 7, mix.Test.Len())
	again, err := cfg.Load(context.Background(), loader, nil)
	require.NoError(t, err)
	assert.Equal(t, mix.Train.Origins, again.Train.Origins, "same seed, same order")
	cfg.Seed = 8
	other, err := cfg.Load(context.Background(), loader, nil)
	require.NoError(t, err)
	assert.NotEqual(t, mix.Train.Origins, other.Train.Origins, "another seed, another order")
	seen := map[Origin]bool{}
	for _, o := range append(mix.Train.Origins, mix.Test.Origins...) {
		assert.False(t, seen[o], "row %v used twice", o)
		seen[o] = true
	}

	cfg.TestSplitSize = ptr(5.0)
	counted, err := cfg.Load(context.Background(), loader, nil)
	require.NoError(t, err)
	assert.Equal(t, 58, counted.Train.Len())
	assert.Equal(t, 5, counted.Test.Len())
	cfg.TestSplitSize = nil
	none, err := cfg.Load(context.Background(), loader, nil)
	require.NoError(t, err)
	assert.Equal(t, 63, none.Train.Len())
	assert.Nil(t, none.Test)
}

// TestTestSplitSizesMatchDatasets checks the split sizes against datasets'
// train_test_split (testdata/split_counts.json from tools/oracle/data_goldens.py).
func TestTestSplitSizesMatchDatasets(t *testing.T) {
	var cases []struct {
		Rows     int     `json:"rows"`
		TestSize float64 `json:"test_size"`
		Train    int     `json:"train"`
		Test     int     `json:"test"`
	}
	b, err := os.ReadFile(filepath.Join("testdata", "split_counts.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &cases))
	require.Len(t, cases, 7)
	for _, c := range cases {
		n, err := testCount(c.TestSize, c.Rows)
		require.NoError(t, err)
		assert.Equal(t, c.Test, n, "rows %d test_size %v", c.Rows, c.TestSize)
		assert.Equal(t, c.Train, c.Rows-n)
	}
}

func TestMixtureRejectsBadConfig(t *testing.T) {
	root := t.TempDir()
	writeJSONL(t, root, "a/train.jsonl", rowsN(10, "a"))
	writeJSONL(t, root, "empty/train.jsonl", nil)
	require.NoError(t, os.WriteFile(filepath.Join(root, "empty", "train.jsonl"), nil, 0o644))
	writeJSONL(t, root, "msgs/train.jsonl", []map[string]any{{"messages": []any{}}})
	loader := LocalLoader{Root: root}
	tests := []struct {
		name string
		cfg  MixtureConfig
		want string
	}{
		{"no datasets", MixtureConfig{}, "datasets is empty"},
		{"zero weight", MixtureConfig{Datasets: []DatasetConfig{{ID: "a", Weight: ptr(0.0)}}}, "weight 0 must be in (0, 1]"},
		{"negative weight", MixtureConfig{Datasets: []DatasetConfig{{ID: "a", Weight: ptr(-1.0)}}}, "must be in (0, 1]"},
		{"column sets differ", MixtureConfig{Datasets: []DatasetConfig{{ID: "a", Columns: []string{"prompt"}}, {ID: "a", Columns: []string{"completion"}}}}, "column names must be consistent"},
		{"missing column", MixtureConfig{Datasets: []DatasetConfig{{ID: "a", Columns: []string{"messages"}}}}, `a/train.jsonl: row 0: missing column "messages"`},
		{"empty split", MixtureConfig{Datasets: []DatasetConfig{{ID: "empty"}}}, "is empty"},
		{"unknown split", MixtureConfig{Datasets: []DatasetConfig{{ID: "a", Split: "validation"}}}, `no data files for config "" split "validation"`},
		{"sources with other columns", MixtureConfig{Datasets: []DatasetConfig{{ID: "a"}, {ID: "msgs"}}}, "mixed datasets must share their columns"},
		{"test size too large", MixtureConfig{Datasets: []DatasetConfig{{ID: "a"}}, TestSplitSize: ptr(10.0)}, "must be smaller than the 10 rows"},
		{"test size not whole", MixtureConfig{Datasets: []DatasetConfig{{ID: "a"}}, TestSplitSize: ptr(2.5)}, "neither a fraction"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.Load(context.Background(), loader, nil)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestLoad reads one split in its file order, as load_dataset does; rows with other columns and
// missing or empty splits are errors naming the file.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	write("train.jsonl", `{"text":"a"}`+"\n"+`{"text":"b"}`+"\n"+`{"text":"c"}`+"\n")
	write("test.jsonl", `{"text":"a"}`+"\n"+`{"other":"b"}`+"\n")
	ds, err := Load(context.Background(), LocalLoader{}, DatasetRef{ID: dir})
	require.NoError(t, err)
	require.Equal(t, 3, ds.Len())
	for i, want := range []string{`"a"`, `"b"`, `"c"`} {
		assert.Equal(t, want, string(ds.Rows[i]["text"]))
		assert.Equal(t, i, ds.Origins[i].Row)
	}
	_, err = Load(context.Background(), LocalLoader{}, DatasetRef{ID: dir, Split: "test"})
	assert.ErrorContains(t, err, "test.jsonl: row 1: columns [other] differ from the first row's [text]")
	_, err = Load(context.Background(), LocalLoader{}, DatasetRef{ID: dir, Split: "validation"})
	assert.Error(t, err)
}
