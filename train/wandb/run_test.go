package wandb

import (
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

// readLog reads a .wandb file the way wandb's transaction log reader does: it checks the W&B
// header and each chunk's checksum, skips block padding and joins FIRST/MIDDLE/LAST chunks.
func readLog(t *testing.T, path string) [][]byte {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, fileHeader, data[:7], "W&B header")
	var records [][]byte
	var pending []byte
	for i := 7; i < len(data); {
		if left := blockSize - i%blockSize; left < chunkHeader {
			require.Equal(t, make([]byte, left), data[i:i+left], "block padding is zero")
			i += left
			continue
		}
		crc := binary.LittleEndian.Uint32(data[i:])
		n := int(binary.LittleEndian.Uint16(data[i+4:]))
		typ := data[i+6]
		chunk := data[i+7 : i+7+n]
		require.Equal(t, crc32.Update(crc32.ChecksumIEEE([]byte{typ}), crc32.IEEETable, chunk), crc, "chunk checksum at %d", i)
		require.LessOrEqual(t, i%blockSize+7+n, blockSize, "chunks stay in their block")
		i += 7 + n
		pending = append(pending, chunk...)
		switch typ {
		case chunkFull, chunkLast:
			records = append(records, pending)
			pending = nil
		case chunkFirst, chunkMiddle:
		default:
			t.Fatalf("chunk type %d", typ)
		}
	}
	require.Nil(t, pending, "no unfinished record")
	return records
}

// fields decodes one protobuf message level: field number → raw values (bytes of messages and
// strings, or varints).
func fields(t *testing.T, b []byte) map[protowire.Number][]any {
	out := map[protowire.Number][]any{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		require.GreaterOrEqual(t, n, 0)
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			out[num] = append(out[num], v)
			b = b[m:]
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			out[num] = append(out[num], v)
			b = b[m:]
		default:
			t.Fatalf("wire type %d", typ)
		}
	}
	return out
}

// record is one decoded Record: its type's field number and payload.
type record struct {
	kind    protowire.Number
	payload []byte
}

func decode(t *testing.T, raw [][]byte) []record {
	var out []record
	for _, r := range raw {
		for num, vals := range fields(t, r) {
			if num >= recordHistory && num <= recordHeader {
				out = append(out, record{num, vals[0].([]byte)})
			}
		}
	}
	return out
}

// items decodes the key/value items of a config, summary or history record.
func items(t *testing.T, payload []byte) map[string]string {
	out := map[string]string{}
	for _, raw := range fields(t, payload)[configUpdate] {
		f := fields(t, raw.([]byte))
		key := ""
		if k, ok := f[itemKey]; ok {
			key = string(k[0].([]byte))
		} else {
			var parts []string
			for _, p := range f[itemNestedKey] {
				parts = append(parts, string(p.([]byte)))
			}
			key = strings.Join(parts, ".")
		}
		out[key] = string(f[itemValueJSON][0].([]byte))
	}
	return out
}

func str(f map[protowire.Number][]any, n protowire.Number) string {
	if v, ok := f[n]; ok {
		return string(v[0].([]byte))
	}
	return ""
}

func TestRunWritesTheRecordsWandbSyncReads(t *testing.T) {
	dir := t.TempDir()
	recipe := filepath.Join(dir, "recipe.yaml")
	require.NoError(t, os.WriteFile(recipe, []byte("learning_rate: 0.002\n"), 0o644))
	start := time.Date(2026, 11, 30, 4, 5, 6, 0, time.UTC)
	run, err := Create(Options{Dir: dir, Project: "handbook", Entity: "team", Group: "g", Name: "tiny-sft", ID: "abc12345",
		Tags: []string{"sft"}, Start: start, Config: map[string]any{"learning_rate": 0.002, "report_to": []string{"wandb"}, "max_length": nil},
		Files: map[string]string{"recipe.yaml": recipe}})
	require.NoError(t, err)
	clock := start
	run.now = func() time.Time { clock = clock.Add(500 * time.Millisecond); return clock }
	require.NoError(t, run.Log(10, map[string]float64{"loss": 2.5, "learning_rate": 0.002, "grad_norm": 1.25, "epoch": 0.5, "step": 10}))
	require.NoError(t, run.Log(10, map[string]float64{"eval_loss": 2.25, "epoch": 0.5, "step": 10}))
	require.NoError(t, run.Log(20, map[string]float64{"train_loss": 2.4, "train_runtime": 3, "epoch": 1, "step": 20}))
	require.NoError(t, run.Finish(0))

	assert.Equal(t, filepath.Join(dir, "wandb", "offline-run-20261130_040506-abc12345"), run.Dir)
	copied, err := os.ReadFile(filepath.Join(run.Dir, "files", "recipe.yaml"))
	require.NoError(t, err)
	assert.Equal(t, "learning_rate: 0.002\n", string(copied))

	recs := decode(t, readLog(t, filepath.Join(run.Dir, "run-abc12345.wandb")))
	var kinds []protowire.Number
	for _, r := range recs {
		kinds = append(kinds, r.kind)
	}
	assert.Equal(t, []protowire.Number{recordHeader, recordRun, recordConfig, recordMetric, recordMetric, recordFiles,
		recordSummary, recordHistory, recordSummary, recordHistory, recordSummary, recordSummary, recordHistory, recordExit}, kinds)

	runFields := fields(t, recs[1].payload)
	assert.Equal(t, "abc12345", str(runFields, runID))
	assert.Equal(t, "team", str(runFields, runEntity))
	assert.Equal(t, "handbook", str(runFields, runProject))
	assert.Equal(t, "g", str(runFields, runGroup))
	assert.Equal(t, "tiny-sft", str(runFields, runDisplayName))
	assert.Equal(t, "sft", str(runFields, runTags))
	assert.Equal(t, map[string]string{"_wandb": "{}"}, items(t, runFields[runConfig][0].([]byte)))
	assert.Equal(t, map[string]string{"learning_rate": "0.002", "max_length": "null", "report_to": `["wandb"]`}, items(t, recs[2].payload))

	assert.Equal(t, map[string]string{"_step": "0", "train/loss": "2.5", "train/learning_rate": "0.002", "train/grad_norm": "1.25",
		"train/epoch": "0.5", "train/global_step": "10", "_timestamp": "1.7960115065e+09", "_runtime": "0.5"}, items(t, recs[7].payload))
	assert.Equal(t, uint64(1), fields(t, fields(t, recs[9].payload)[historyStep][0].([]byte))[stepNum][0], "history rows count _step from 0")
	assert.Equal(t, "2.25", items(t, recs[9].payload)["eval/loss"])
	assert.Equal(t, map[string]string{"train_loss": "2.4", "train_runtime": "3"}, items(t, recs[10].payload), "end-of-training scalars go to the summary")
	assert.Equal(t, map[string]string{"_step": "2", "train/epoch": "1", "train/global_step": "20", "_timestamp": "1.7960115075e+09", "_runtime": "1.5"},
		items(t, recs[12].payload))
}

func TestLargeRecordsSpanBlocks(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("x", 3*blockSize)
	run, err := Create(Options{Dir: dir, ID: "big00001", Config: map[string]any{"blob": big}})
	require.NoError(t, err)
	for i := range 400 { // many small rows: some block tails are too short for a chunk header
		require.NoError(t, run.Log(i, map[string]float64{"loss": float64(i)}))
	}
	require.NoError(t, run.Finish(0))
	recs := decode(t, readLog(t, filepath.Join(run.Dir, "run-big00001.wandb")))
	var value string
	require.NoError(t, json.Unmarshal([]byte(items(t, recs[2].payload)["blob"]), &value))
	assert.Equal(t, big, value)
	assert.Equal(t, "399", items(t, recs[len(recs)-2].payload)["train/loss"])
}

// The metric definitions are byte for byte those wandb 0.31.0 writes for transformers'
// define_metric calls, and the reader above decodes wandb's own file (tools/oracle/wandb_golden.py).
func TestWandbsOwnFileReadsTheSame(t *testing.T) {
	recs := decode(t, readLog(t, filepath.Join("testdata", "python_offline.wandb")))
	var metrics [][]byte
	var history []map[string]string
	for _, r := range recs {
		switch r.kind {
		case recordMetric:
			metrics = append(metrics, r.payload)
		case recordHistory:
			history = append(history, items(t, r.payload))
		}
	}
	dir := t.TempDir()
	run, err := Create(Options{Dir: dir, ID: "golden01"})
	require.NoError(t, err)
	require.NoError(t, run.Finish(0))
	var ours [][]byte
	for _, r := range decode(t, readLog(t, filepath.Join(run.Dir, "run-golden01.wandb"))) {
		if r.kind == recordMetric {
			ours = append(ours, r.payload)
		}
	}
	assert.Equal(t, metrics, ours)
	require.Len(t, history, 2)
	assert.Equal(t, "2.5", history[0]["train/loss"])
	assert.Equal(t, "0", history[0]["_step"])
	assert.Equal(t, "2", history[1]["train/global_step"])
}

// Values are written as wandb-core writes them (Go's shortest 'g' form, as in the golden file's
// "_timestamp": 1.7960106337802866e+09), integers without a fraction.
func TestNumberFormatsLikeWandb(t *testing.T) {
	for v, want := range map[float64]string{1: "1", 0.002: "0.002", 2.5e-7: "2.5e-07", 1796010633.7802866: "1.7960106337802866e+09", -3: "-3"} {
		assert.Equal(t, want, number(v))
	}
}

func TestFromEnv(t *testing.T) {
	for _, k := range []string{"WANDB_DIR", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_GROUP", "WANDB_JOB_TYPE", "WANDB_NAME", "WANDB_NOTES", "WANDB_TAGS", "WANDB_RUN_ID", "WANDB_MODE", "WANDB_DISABLED"} {
		t.Setenv(k, "")
	}
	o, mode, notice := FromEnv()
	assert.Equal(t, "huggingface", o.Project)
	assert.Equal(t, Offline, mode)
	assert.Contains(t, notice, "nothing is streamed")
	t.Setenv("WANDB_PROJECT", "p")
	t.Setenv("WANDB_ENTITY", "e")
	t.Setenv("WANDB_RUN_GROUP", "g")
	t.Setenv("WANDB_TAGS", "a, b")
	t.Setenv("WANDB_MODE", "offline")
	o, mode, notice = FromEnv()
	assert.Equal(t, Options{Project: "p", Entity: "e", Group: "g", Tags: []string{"a", "b"}}, o)
	assert.Equal(t, Offline, mode)
	assert.Empty(t, notice)
	t.Setenv("WANDB_MODE", "disabled")
	_, mode, _ = FromEnv()
	assert.Equal(t, Disabled, mode)
}

// TestOracleRun writes a run and its expectation for tools/oracle/wandb_check.py into
// $WANDB_ORACLE_DIR (skipped without it): the real wandb package's `wandb sync` must upload the
// config, every row (with transformers' key names) and the summary with equal values.
func TestOracleRun(t *testing.T) {
	out := os.Getenv("WANDB_ORACLE_DIR")
	if out == "" {
		t.Skip("WANDB_ORACLE_DIR not set")
	}
	recipe := filepath.Join(out, "recipe.yaml")
	require.NoError(t, os.WriteFile(recipe, []byte("learning_rate: 2.0e-03\n"), 0o644))
	config := map[string]any{"learning_rate": 0.002, "output_dir": "out/tiny-sft", "report_to": []any{"wandb"},
		"max_length": 128.0, "lr_scheduler_kwargs": map[string]any{}, "hub_model_id": nil, "model/num_parameters": 812544.0}
	run, err := Create(Options{Dir: out, Project: "handbook-oracle", Name: "tiny-sft", ID: "oracle01", Config: config,
		Files: map[string]string{"recipe.yaml": recipe}})
	require.NoError(t, err)
	logged := []map[string]float64{
		{"loss": 2.5, "learning_rate": 0.002, "grad_norm": 1.25, "epoch": 0.25, "num_tokens": 4096, "step": 1},
		{"loss": 2.125, "learning_rate": 0.0015, "grad_norm": 0.75, "epoch": 0.5, "num_tokens": 8192, "step": 2},
		{"eval_loss": 2.0625, "eval_runtime": 0.5, "epoch": 0.5, "step": 2},
		{"loss": 1.875, "learning_rate": 2.5e-05, "grad_norm": 0.5, "epoch": 1, "num_tokens": 16384, "step": 4},
		{"train_loss": 2.1, "train_runtime": 3.25, "train_samples_per_second": 10.5, "epoch": 1, "step": 4},
	}
	var rows []map[string]float64
	summary := map[string]float64{}
	for _, m := range logged {
		require.NoError(t, run.Log(int(m["step"]), m))
		row := map[string]float64{}
		for k, v := range m {
			switch {
			case k == "step":
				row["train/global_step"] = v
			case k == "train_loss" || k == "train_runtime" || k == "train_samples_per_second":
				summary[k] = v
			default:
				row[TrainerKey(k)] = v
			}
		}
		rows = append(rows, row)
	}
	require.NoError(t, run.Finish(0))
	expect := map[string]any{"run_dir": run.Dir, "run_id": "oracle01", "project": "handbook-oracle", "config": config,
		"rows": rows, "summary": summary, "files": []string{"recipe.yaml"}}
	data, err := json.MarshalIndent(expect, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(out, "expect.json"), data, 0o644))
}
