package tbevent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// LoggingDirEnv is the environment variable that, when set, overrides the TensorBoard log directory, as in
// transformers' TensorBoardCallback.
const LoggingDirEnv = "TENSORBOARD_LOGGING_DIR"

// DefaultLogDir is the directory transformers' TensorBoardCallback logs into for a run writing to outputDir:
// $TENSORBOARD_LOGGING_DIR (with a leading ~ expanded) when set, otherwise LogDir(outputDir, time.Now(), hostname).
func DefaultLogDir(outputDir string) (string, error) {
	if dir, ok := os.LookupEnv(LoggingDirEnv); ok {
		if dir != "~" && !strings.HasPrefix(dir, "~/") {
			return dir, nil
		}
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("tbevent: expand %s=%q: %w", LoggingDirEnv, dir, err)
		}
		return filepath.Join(home, dir[1:]), nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("tbevent: default log dir: %w", err)
	}
	return LogDir(outputDir, time.Now(), host), nil
}

// LogDir is transformers' (and PyTorch's) default run directory: outputDir/runs/<now as Jan02_15-04-05>_<host>,
// the time in now's location (Python's datetime.now() is local time, its %b the C-locale month abbreviation).
func LogDir(outputDir string, now time.Time, host string) string {
	return filepath.Join(outputDir, "runs", now.Format("Jan02_15-04-05")+"_"+host)
}

// Tag is the TensorBoard tag transformers gives a logged metric (rewrite_logs): "eval_loss" → "eval/loss",
// "test_accuracy" → "test/accuracy", anything else → "train/<key>" ("loss" → "train/loss").
func Tag(key string) string {
	if rest, ok := strings.CutPrefix(key, "eval_"); ok {
		return "eval/" + rest
	}
	if rest, ok := strings.CutPrefix(key, "test_"); ok {
		return "test/" + rest
	}
	return "train/" + key
}
