"""Write the golden TensorBoard event file for handbook/train/tbevent with PyTorch's SummaryWriter.

transformers' TensorBoardCallback logs through torch.utils.tensorboard.SummaryWriter.add_scalar, so this is the
writer the Go package must match byte for byte. time.time() is pinned while the writer is created, which fixes the
wall time of the file_version record (and the file name); every scalar passes an explicit walltime.

Writes train/tbevent/testdata/golden.tfevents (the event file, renamed so the name holds no host or pid) and
train/tbevent/testdata/golden.json (start wall time, source writer, and the scalars as logged). Deterministic:
re-running it yields identical files.

    python tools/oracle/tensorboard_golden.py
"""

import json
import os
import pathlib
import tempfile
from unittest import mock

from tensorboard.summary.writer import event_file_writer
from torch.utils.tensorboard import SummaryWriter

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "train" / "tbevent" / "testdata"

START = 1700000000.25
# (tag, step, value, wall_time): proto3 omits step 0; values that round in float32, negative, tiny and huge ones.
SCALARS = [
    ("train/loss", 0, 2.5, 1700000001.5),
    ("train/learning_rate", 0, 0.0, 1700000001.5),
    ("train/loss", 1, 1.0 / 3.0, 1700000002.125),
    ("train/grad_norm", 1, -0.001, 1700000002.125),
    ("train/epoch", 5, 0.1, 1700000003.0),
    ("eval/loss", 10, 1e30, 1700000004.75),
    ("eval/mean_token_accuracy", 1 << 40, 1.2345678901234567e-8, 1700000005.0),
]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        with mock.patch.object(event_file_writer.time, "time", return_value=START):
            writer = SummaryWriter(log_dir=tmp)
            writer.file_writer.flush()
        for tag, step, value, wall in SCALARS:
            writer.add_scalar(tag, value, step, walltime=wall)
        writer.close()
        (name,) = os.listdir(tmp)
        data = (pathlib.Path(tmp) / name).read_bytes()
    (OUT / "golden.tfevents").write_bytes(data)
    expect = {
        "start": START,
        "source_writer": "tensorboard.summary.writer.event_file_writer",
        "scalars": [{"tag": t, "step": s, "value": v, "wall_time": w} for t, s, v, w in SCALARS],
    }
    (OUT / "golden.json").write_text(json.dumps(expect, indent=1) + "\n")
    print(f"wrote {OUT / 'golden.tfevents'} ({len(data)} bytes) and golden.json")


if __name__ == "__main__":
    main()
