package tbevent

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// FileVersion is the file_version string of the first event of every event file.
const FileVersion = "brain.Event:2"

// DefaultSourceWriter is the source_metadata.writer recorded in the first event when Options.SourceWriter is
// empty. TensorBoard's own writer records "tensorboard.summary.writer.event_file_writer" there.
const DefaultSourceWriter = "handbook/train/tbevent"

// Field numbers of tensorflow.Event, tensorflow.SourceMetadata, tensorflow.Summary and tensorflow.Summary.Value
// (tensorboard/compat/proto/event.proto and summary.proto).
const (
	eventWallTime       protowire.Number = 1
	eventStep           protowire.Number = 2
	eventFileVersion    protowire.Number = 3
	eventSummary        protowire.Number = 5
	eventSourceMetadata protowire.Number = 10
	sourceWriter        protowire.Number = 1
	summaryValue        protowire.Number = 1
	valueTag            protowire.Number = 1
	valueSimpleValue    protowire.Number = 2
)

// crcTable is the CRC-32C (Castagnoli) table TFRecord checksums use.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// fileCounter numbers the files this process creates, like TensorBoard's global uid, so that two writers opened
// in the same second in the same directory never share a file name.
var fileCounter atomic.Int64

// Options configures a Writer. The zero value is ready to use.
type Options struct {
	// Start is the wall time of the file_version event and, for Create, the seconds in the file name.
	// Zero means time.Now().
	Start time.Time
	// SourceWriter is recorded as source_metadata.writer in the first event. Empty means DefaultSourceWriter.
	SourceWriter string
}

// Writer appends scalar events to one TensorBoard event file. Its methods are safe for concurrent use.
// Events are buffered: call Flush after each logging step so that a running TensorBoard sees them.
type Writer struct {
	mu     sync.Mutex
	buf    *bufio.Writer
	closer io.Closer // the file opened by Create; nil for NewWriter
	name   string
	scr    []byte // scratch for event encoding, reused between records
	closed bool
}

// Create makes dir (and its parents) if needed and opens a new event file in it named like TensorBoard's:
// events.out.tfevents.<unix seconds, 10 digits>.<hostname>.<pid>.<counter>. The file_version event is written
// and flushed before Create returns.
func Create(dir string) (*Writer, error) {
	return CreateWith(dir, Options{})
}

// CreateWith is Create with explicit Options.
func CreateWith(dir string, opts Options) (*Writer, error) {
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("tbevent: event file name: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tbevent: create log dir: %w", err)
	}
	name := filepath.Join(dir, fmt.Sprintf("events.out.tfevents.%010d.%s.%d.%d",
		opts.Start.Unix(), host, os.Getpid(), fileCounter.Add(1)-1))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("tbevent: create event file: %w", err)
	}
	w, err := newWriter(f, opts)
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	w.closer, w.name = f, name
	if err := w.Flush(); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return w, nil
}

// NewWriter writes an event file to out, starting with the file_version event. Close flushes the buffered events
// but does not close out.
func NewWriter(out io.Writer, opts Options) (*Writer, error) {
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	return newWriter(out, opts)
}

// newWriter buffers out and writes the file_version event; opts.Start must be set.
func newWriter(out io.Writer, opts Options) (*Writer, error) {
	if opts.SourceWriter == "" {
		opts.SourceWriter = DefaultSourceWriter
	}
	w := &Writer{buf: bufio.NewWriter(out)}
	ev := appendWallStep(nil, opts.Start, 0)
	ev = protowire.AppendTag(ev, eventFileVersion, protowire.BytesType)
	ev = protowire.AppendString(ev, FileVersion)
	ev = protowire.AppendTag(ev, eventSourceMetadata, protowire.BytesType)
	ev = protowire.AppendVarint(ev, uint64(protowire.SizeTag(sourceWriter)+protowire.SizeBytes(len(opts.SourceWriter))))
	ev = protowire.AppendTag(ev, sourceWriter, protowire.BytesType)
	ev = protowire.AppendString(ev, opts.SourceWriter)
	if err := w.writeRecord(ev); err != nil {
		return nil, fmt.Errorf("tbevent: write file_version event: %w", err)
	}
	return w, nil
}

// Name is the path of the event file opened by Create, or "" for a Writer made by NewWriter.
func (w *Writer) Name() string {
	return w.name
}

// Scalar appends one event holding the scalar value (stored as float32, as TensorBoard does) under tag at step,
// stamped with wall. Tags follow transformers' convention: "train/loss", "train/learning_rate", "eval/loss" (see
// Tag).
func (w *Writer) Scalar(tag string, step int64, value float64, wall time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("tbevent: scalar %q at step %d: writer is closed", tag, step)
	}
	valueLen := protowire.SizeTag(valueSimpleValue) + protowire.SizeFixed32()
	if tag != "" {
		valueLen += protowire.SizeTag(valueTag) + protowire.SizeBytes(len(tag))
	}
	summaryLen := protowire.SizeTag(summaryValue) + protowire.SizeBytes(valueLen)

	ev := appendWallStep(w.scr[:0], wall, step)
	ev = protowire.AppendTag(ev, eventSummary, protowire.BytesType)
	ev = protowire.AppendVarint(ev, uint64(summaryLen))
	ev = protowire.AppendTag(ev, summaryValue, protowire.BytesType)
	ev = protowire.AppendVarint(ev, uint64(valueLen))
	if tag != "" {
		ev = protowire.AppendTag(ev, valueTag, protowire.BytesType)
		ev = protowire.AppendString(ev, tag)
	}
	ev = protowire.AppendTag(ev, valueSimpleValue, protowire.Fixed32Type)
	ev = protowire.AppendFixed32(ev, math.Float32bits(float32(value)))
	w.scr = ev
	if err := w.writeRecord(ev); err != nil {
		return fmt.Errorf("tbevent: scalar %q at step %d: %w", tag, step, err)
	}
	return nil
}

// Flush writes the buffered events to the underlying file or io.Writer.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	if err := w.buf.Flush(); err != nil {
		return fmt.Errorf("tbevent: flush %s: %w", w.describe(), err)
	}
	return nil
}

// Close flushes the buffered events and closes the file opened by Create. Calling Close again is a no-op.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	flushErr := w.buf.Flush()
	var closeErr error
	if w.closer != nil {
		closeErr = w.closer.Close()
	}
	if flushErr != nil {
		return fmt.Errorf("tbevent: close %s: %w", w.describe(), flushErr)
	}
	if closeErr != nil {
		return fmt.Errorf("tbevent: close %s: %w", w.describe(), closeErr)
	}
	return nil
}

// describe names the destination in error messages.
func (w *Writer) describe() string {
	if w.name == "" {
		return "event stream"
	}
	return w.name
}

// appendWallStep appends Event.wall_time (seconds since the Unix epoch, as a double) and Event.step, leaving out
// zero values as proto3 serialisation does.
func appendWallStep(b []byte, wall time.Time, step int64) []byte {
	// Whole seconds plus the fraction: exact for whole and binary-fraction times, and the nearest double to
	// any float seconds value that went through time.Unix(whole, round(fraction·1e9)).
	if secs := float64(wall.Unix()) + float64(wall.Nanosecond())/1e9; secs != 0 {
		b = protowire.AppendTag(b, eventWallTime, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(secs))
	}
	if step != 0 {
		b = protowire.AppendTag(b, eventStep, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(step))
	}
	return b
}

// writeRecord frames data as one TFRecord and appends it to the buffer.
func (w *Writer) writeRecord(data []byte) error {
	var header [12]byte
	binary.LittleEndian.PutUint64(header[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(header[8:], maskedCRC(header[:8]))
	var footer [4]byte
	binary.LittleEndian.PutUint32(footer[:], maskedCRC(data))
	for _, part := range [][]byte{header[:], data, footer[:]} {
		if _, err := w.buf.Write(part); err != nil {
			return err
		}
	}
	return nil
}

// maskedCRC is TFRecord's masked CRC32C of b.
func maskedCRC(b []byte) uint32 {
	crc := crc32.Checksum(b, crcTable)
	return (crc>>15 | crc<<17) + 0xa282ead8
}
