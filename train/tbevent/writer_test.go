package tbevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScalarRoundTrip(t *testing.T) {
	wall := time.Unix(1700000123, 500_000_000)
	tests := []struct {
		name  string
		tag   string
		step  int64
		value float64
		wall  time.Time
		want  event
	}{
		{"loss", "train/loss", 3, 1.25, wall,
			event{WallTime: 1700000123.5, Step: 3, Values: []value{{"train/loss", 1.25}}}},
		{"zero step and value", "train/learning_rate", 0, 0, wall,
			event{WallTime: 1700000123.5, Values: []value{{"train/learning_rate", 0}}}},
		{"rounds to float32", "eval/loss", 7, 0.1, wall,
			event{WallTime: 1700000123.5, Step: 7, Values: []value{{"eval/loss", float32(0.1)}}}},
		{"negative step", "train/x", -2, -3, wall,
			event{WallTime: 1700000123.5, Step: -2, Values: []value{{"train/x", -3}}}},
		{"huge step", "train/x", math.MaxInt64, 1e39, wall,
			event{WallTime: 1700000123.5, Step: math.MaxInt64, Values: []value{{"train/x", float32(math.Inf(1))}}}},
		{"empty tag, epoch wall", "", 1, 2, time.Unix(0, 0),
			event{Step: 1, Values: []value{{"", 2}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, Options{Start: time.Unix(1700000000, 0)})
			require.NoError(t, err)
			require.NoError(t, w.Scalar(tc.tag, tc.step, tc.value, tc.wall))
			require.NoError(t, w.Close())
			events, err := readEvents(&buf)
			require.NoError(t, err)
			require.Len(t, events, 2)
			assert.Equal(t, event{WallTime: 1700000000, FileVersion: FileVersion, SourceWriter: DefaultSourceWriter},
				events[0])
			assert.Equal(t, tc.want, events[1])
		})
	}
}

func TestNaNScalar(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{})
	require.NoError(t, err)
	require.NoError(t, w.Scalar("train/loss", 1, math.NaN(), time.Now()))
	require.NoError(t, w.Close())
	events, err := readEvents(&buf)
	require.NoError(t, err)
	require.Len(t, events, 2)
	assert.True(t, math.IsNaN(float64(events[1].Values[0].SimpleValue)))
}

func TestCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "runs", "Jan02_15-04-05_host")
	start := time.Unix(1700000000, 0)
	w, err := CreateWith(dir, Options{Start: start})
	require.NoError(t, err)
	host, err := os.Hostname()
	require.NoError(t, err)
	base := filepath.Base(w.Name())
	assert.Equal(t, dir, filepath.Dir(w.Name()))
	assert.True(t, strings.HasPrefix(base, "events.out.tfevents.1700000000."+host+"."), base)

	// The file_version event is on disk before any Flush.
	events := readFile(t, w.Name())
	require.Len(t, events, 1)
	assert.Equal(t, FileVersion, events[0].FileVersion)

	require.NoError(t, w.Scalar("train/loss", 1, 2, start.Add(time.Second)))
	require.NoError(t, w.Flush())
	assert.Len(t, readFile(t, w.Name()), 2)
	require.NoError(t, w.Close())
	require.NoError(t, w.Close(), "second Close")
	require.NoError(t, w.Flush(), "Flush after Close")
	assert.ErrorContains(t, w.Scalar("train/loss", 2, 1, start), "closed")

	// A second writer in the same second gets its own file.
	w2, err := CreateWith(dir, Options{Start: start})
	require.NoError(t, err)
	assert.NotEqual(t, w.Name(), w2.Name())
	require.NoError(t, w2.Close())
}

func TestCreateErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err := Create(filepath.Join(file, "sub"))
	assert.ErrorContains(t, err, "tbevent: create log dir")
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrors(t *testing.T) {
	w, err := NewWriter(failWriter{}, Options{})
	require.NoError(t, err, "the first event is only buffered")
	assert.ErrorContains(t, w.Flush(), "disk full")
	assert.ErrorContains(t, w.Scalar("train/loss", 1, 1, time.Now()), `scalar "train/loss" at step 1: disk full`)
	assert.ErrorContains(t, w.Close(), "tbevent: close event stream: disk full")
}

func TestReaderDetectsCorruption(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{})
	require.NoError(t, err)
	require.NoError(t, w.Scalar("train/loss", 1, 1, time.Now()))
	require.NoError(t, w.Close())
	good := buf.Bytes()
	tests := []struct {
		name string
		at   int
		want string
	}{
		{"length", 0, "length crc"},
		{"length crc", 9, "length crc"},
		{"data", 14, "data crc"},
		{"data crc", len(good) - 1, "data crc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Clone(good)
			bad[tc.at] ^= 1
			_, err := readEvents(bytes.NewReader(bad))
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// TestOracleFile writes an event file and its expectation for tools/oracle/tensorboard_check.py into
// $TBEVENT_ORACLE_DIR; without it, it writes to a temp dir and checks the file with readEvents.
func TestOracleFile(t *testing.T) {
	dir := os.Getenv("TBEVENT_ORACLE_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	start := float64(time.Now().Unix()) + 0.125
	var scalars []goldenScalar
	for step := int64(1); step <= 20; step++ {
		wall := start + 0.37*float64(step)
		for _, m := range []struct {
			key string
			v   float64
		}{
			{"loss", 3 / float64(step)},
			{"learning_rate", 1e-4 * float64(20-step) / 20},
			{"grad_norm", math.Sqrt(float64(step))},
		} {
			scalars = append(scalars, goldenScalar{Tag(m.key), step, m.v, wall})
		}
		if step%10 == 0 {
			scalars = append(scalars, goldenScalar{Tag("eval_loss"), step, 2 / float64(step), wall})
		}
	}
	w, err := Create(dir)
	require.NoError(t, err)
	for _, s := range scalars {
		require.NoError(t, w.Scalar(s.Tag, s.Step, s.Value, wallTime(s.WallTime)))
	}
	require.NoError(t, w.Close())

	events := readFile(t, w.Name())
	require.Len(t, events, 1+len(scalars))
	for i, s := range scalars {
		assert.Equal(t, s.WallTime, events[i+1].WallTime)
		assert.Equal(t, s.Step, events[i+1].Step)
		assert.Equal(t, []value{{s.Tag, float32(s.Value)}}, events[i+1].Values)
	}
	expect, err := json.MarshalIndent(map[string]any{"event_file": w.Name(), "scalars": scalars}, "", " ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "expect.json"), expect, 0o644))
}

func readFile(t *testing.T, name string) []event {
	t.Helper()
	f, err := os.Open(name)
	require.NoError(t, err)
	defer f.Close()
	events, err := readEvents(f)
	require.NoError(t, err)
	return events
}
