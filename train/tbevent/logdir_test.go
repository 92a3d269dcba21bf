package tbevent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTag(t *testing.T) {
	tests := []struct{ key, want string }{
		{"loss", "train/loss"},
		{"learning_rate", "train/learning_rate"},
		{"eval_loss", "eval/loss"},
		{"eval_mean_token_accuracy", "eval/mean_token_accuracy"},
		{"test_accuracy", "test/accuracy"},
		{"evaluation", "train/evaluation"},
		{"train_runtime", "train/train_runtime"},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			assert.Equal(t, tc.want, Tag(tc.key))
		})
	}
}

func TestLogDir(t *testing.T) {
	tests := []struct {
		now  time.Time
		want string
	}{
		{time.Date(2025, time.July, 4, 9, 5, 3, 999, time.UTC), "out/runs/Jul04_09-05-03_box"},
		{time.Date(2024, time.December, 31, 23, 59, 59, 0, time.UTC), "out/runs/Dec31_23-59-59_box"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			assert.Equal(t, filepath.FromSlash(tc.want), LogDir("out", tc.now, "box"))
		})
	}
}

func TestDefaultLogDir(t *testing.T) {
	home, err := os.UserHomeDir()
	require.NoError(t, err)
	tests := []struct {
		name, env, want string
	}{
		{"absolute", "/tmp/tb", "/tmp/tb"},
		{"relative", "tb", "tb"},
		{"home", "~", home},
		{"under home", "~/tb/run", filepath.Join(home, "tb", "run")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(LoggingDirEnv, tc.env)
			got, err := DefaultLogDir("out")
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	t.Run("unset", func(t *testing.T) {
		t.Setenv(LoggingDirEnv, "")
		require.NoError(t, os.Unsetenv(LoggingDirEnv))
		host, err := os.Hostname()
		require.NoError(t, err)
		got, err := DefaultLogDir("out")
		require.NoError(t, err)
		assert.Equal(t, filepath.Join("out", "runs"), filepath.Dir(got))
		assert.True(t, strings.HasSuffix(got, "_"+host), got)
		_, err = time.ParseInLocation("Jan02_15-04-05", strings.TrimSuffix(filepath.Base(got), "_"+host), time.Local)
		assert.NoError(t, err)
	})
}
