// Package wandb writes Weights & Biases runs in offline mode: the run directory wandb itself
// writes under WANDB_DIR (wandb/offline-run-<time>-<id>/run-<id>.wandb plus files/), which
// `wandb sync` uploads later. Nothing is streamed live.
//
// The .wandb file is W&B's transaction log: a LevelDB log (32 KiB blocks, chunked records, each
// chunk checksummed with CRC-32 over its type byte and data) after a 7-byte ":W&B" header, whose
// records are protobuf wandb_internal.Record messages. A run written here holds what
// transformers' WandbCallback makes wandb write: the run record, the config, train/global_step
// defined as every metric's x axis, one history row per logging step (train/…, eval/… keys plus
// wandb's _step, _timestamp and _runtime) with its summary update, the end-of-training scalars in
// the summary, the run's files and the exit record.
//
// The few record fields needed are encoded by hand with google.golang.org/protobuf/encoding/protowire
// (as train/tbevent does) rather than generated from wandb_internal.proto: generating would bring
// wandb's whole schema (wandb_internal, wandb_base, wandb_telemetry and their imports, thousands of
// lines) for about thirty fields. The field numbers are checked against wandb's own descriptors and
// files: tools/oracle/wandb_check.py has the PyPI wandb package's `wandb sync` upload a run
// written here to a local W&B stand-in, and train/wandb/testdata holds a run written by wandb.
package wandb
