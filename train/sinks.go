package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// SaveObserver is a Sink that also hears of each checkpoint the engine writes, once it is
// complete on disk (transformers' on_save): dir is output_dir/checkpoint-<step>. A push to the
// Hub starts there; the observer must not block training for long.
type SaveObserver interface {
	Saved(step int, dir string)
}

// JSONLSink appends every logged entry as one JSON line ({"step":…, "loss":…, …}) to a file.
type JSONLSink struct {
	f *os.File
}

// LogFile is the JSONL metrics file a run keeps in its output directory.
const LogFile = "metrics.jsonl"

// NewJSONLSink opens (appending, so a resumed run continues the file) path.
func NewJSONLSink(path string) (*JSONLSink, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("metrics log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("metrics log: %w", err)
	}
	return &JSONLSink{f: f}, nil
}

// Log implements Sink.
func (s *JSONLSink) Log(_ int, metrics map[string]float64) error {
	data, err := json.Marshal(metrics)
	if err != nil {
		return err
	}
	_, err = s.f.Write(append(data, '\n'))
	return err
}

// Close closes the file.
func (s *JSONLSink) Close() error { return s.f.Close() }
