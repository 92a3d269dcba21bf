// Package tbevent writes TensorBoard event files: the scalar log that transformers' TensorBoardCallback writes
// when a recipe says `report_to: tensorboard`.
//
// An event file is a sequence of TFRecords — a little-endian uint64 length, the masked CRC32C of those 8 bytes,
// the payload, the masked CRC32C of the payload — whose payloads are protobuf-encoded tensorflow.Event messages.
// The first event carries file_version "brain.Event:2"; every later one a Summary with one simple_value scalar,
// which is what PyTorch's SummaryWriter.add_scalar (used by transformers) writes. Given the same wall times the
// bytes are identical to PyTorch's, and the PyPI tensorboard reader loads them (see tools/oracle).
//
// Typical use from a training loop:
//
//	dir, err := tbevent.DefaultLogDir(outputDir) // output_dir/runs/<Mon02_15-04-05>_<host>, like transformers
//	w, err := tbevent.Create(dir)
//	err = w.Scalar(tbevent.Tag("loss"), step, loss, time.Now()) // tag "train/loss"
//	err = w.Flush()                                            // after each logging step
//	err = w.Close()
package tbevent
