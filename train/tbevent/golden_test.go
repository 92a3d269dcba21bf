package tbevent

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// golden is testdata/golden.json, written with testdata/golden.tfevents by tools/oracle/tensorboard_golden.py.
type golden struct {
	Start        float64        `json:"start"`
	SourceWriter string         `json:"source_writer"`
	Scalars      []goldenScalar `json:"scalars"`
}

// goldenScalar is one add_scalar call of the golden run (and of the oracle expectation).
type goldenScalar struct {
	Tag      string  `json:"tag"`
	Step     int64   `json:"step"`
	Value    float64 `json:"value"`
	WallTime float64 `json:"wall_time"`
}

// wallTime converts Python's time.time() seconds to a time.Time.
func wallTime(secs float64) time.Time {
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(math.Round(frac*1e9)))
}

func loadGolden(t *testing.T) (golden, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	require.NoError(t, err)
	var g golden
	require.NoError(t, json.Unmarshal(raw, &g))
	data, err := os.ReadFile(filepath.Join("testdata", "golden.tfevents"))
	require.NoError(t, err)
	return g, data
}

func TestGoldenReadBack(t *testing.T) {
	g, data := loadGolden(t)
	events, err := readEvents(bytes.NewReader(data))
	require.NoError(t, err)
	require.Len(t, events, 1+len(g.Scalars))
	assert.Equal(t, event{WallTime: g.Start, FileVersion: FileVersion, SourceWriter: g.SourceWriter}, events[0])
	for i, s := range g.Scalars {
		assert.Equal(t, event{
			WallTime: s.WallTime, Step: s.Step,
			Values: []value{{Tag: s.Tag, SimpleValue: float32(s.Value)}},
		}, events[i+1], "scalar %d", i)
	}
}

func TestGoldenBytes(t *testing.T) {
	g, want := loadGolden(t)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{Start: wallTime(g.Start), SourceWriter: g.SourceWriter})
	require.NoError(t, err)
	for _, s := range g.Scalars {
		require.NoError(t, w.Scalar(s.Tag, s.Step, s.Value, wallTime(s.WallTime)))
	}
	require.NoError(t, w.Close())
	assert.Equal(t, want, buf.Bytes())
}
