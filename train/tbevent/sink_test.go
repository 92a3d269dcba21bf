package tbevent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSink: a logging step becomes one scalar per metric under transformers' tags, "step" left
// out, in output_dir/runs/<date>_<host>/; a sink that logged nothing leaves no file.
func TestSink(t *testing.T) {
	out := t.TempDir()
	require.NoError(t, NewSink(out).Close())
	none, err := filepath.Glob(filepath.Join(out, "runs", "*"))
	require.NoError(t, err)
	assert.Empty(t, none)
	s := NewSink(out)
	require.NoError(t, s.Log(4, map[string]float64{"loss": 1.5, "eval_loss": 2, "step": 4}))
	require.NoError(t, s.Close())
	files, err := filepath.Glob(filepath.Join(out, "runs", "*", "events.out.tfevents.*"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	f, err := os.Open(files[0])
	require.NoError(t, err)
	defer f.Close()
	events, err := readEvents(f)
	require.NoError(t, err)
	require.Len(t, events, 3)
	assert.Equal(t, []value{{"eval/loss", 2}}, events[1].Values)
	assert.Equal(t, []value{{"train/loss", 1.5}}, events[2].Values)
	assert.Equal(t, int64(4), events[2].Step)
}
