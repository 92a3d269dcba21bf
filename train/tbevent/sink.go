package tbevent

import (
	"maps"
	"slices"
	"time"
)

// Sink writes each logged metric as a TensorBoard scalar, tagged as transformers'
// TensorBoardCallback tags it ("loss" → "train/loss", "eval_loss" → "eval/loss"). It is a
// train.Sink: a trainer's Sinks field takes it. Its event file is created with the first value,
// so a run that logs nothing writes none.
type Sink struct {
	outputDir string
	w         *Writer
}

// NewSink returns a sink writing where transformers' TensorBoardCallback does:
// outputDir/runs/<Mon02_15-04-05>_<host>/.
func NewSink(outputDir string) *Sink { return &Sink{outputDir: outputDir} }

// Log writes one logging step's metrics (all but "step") and flushes them.
func (s *Sink) Log(step int, metrics map[string]float64) error {
	if s.w == nil {
		dir, err := DefaultLogDir(s.outputDir)
		if err != nil {
			return err
		}
		if s.w, err = Create(dir); err != nil {
			return err
		}
	}
	now := time.Now()
	for _, k := range slices.Sorted(maps.Keys(metrics)) {
		if k == "step" {
			continue
		}
		if err := s.w.Scalar(Tag(k), int64(step), metrics[k], now); err != nil {
			return err
		}
	}
	return s.w.Flush()
}

// Close flushes and closes the event file, if one was written.
func (s *Sink) Close() error {
	if s.w == nil {
		return nil
	}
	return s.w.Close()
}
