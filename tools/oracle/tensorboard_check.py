"""Check a Go-written TensorBoard event file with the PyPI tensorboard package's own readers.

    TBEVENT_ORACLE_DIR=/tmp/tb go test ./train/tbevent -run TestOracleFile
    python tools/oracle/tensorboard_check.py /tmp/tb/expect.json

expect.json (written by that test) names the event file and lists the scalars logged: tag, step, value, wall_time.
The file is read twice: record by record with tensorboard's RawEventFileLoader (its TFRecord reader checks both
CRCs of every record and stops at a bad one), each record parsed as an Event (the first must carry file_version
"brain.Event:2"); and through EventAccumulator, the loader TensorBoard's UI uses. Each scalar must come back
with the same tag, step, wall time and float32 value, in order. Exits non-zero on any mismatch.
"""

import json
import os
import sys

import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto import event_pb2


def first_diff(got: list, want: list) -> str:
    """Describe where two scalar lists first differ."""
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"scalar {i}: got {g}, want {w}"
    return f"got {len(got)} scalars, want {len(want)}"


def main(path: str) -> None:
    with open(path) as f:
        expect = json.load(f)
    event_file = expect["event_file"]
    want = [(s["tag"], s["step"], float(np.float32(s["value"])), s["wall_time"]) for s in expect["scalars"]]

    # Record level: CRC-checked framing, one Event per record.
    events = [event_pb2.Event.FromString(r) for r in RawEventFileLoader(event_file, detect_file_replacement=False).Load()]
    assert events, "no records"
    assert events[0].file_version == "brain.Event:2", events[0]
    got = []
    for ev in events[1:]:
        assert ev.WhichOneof("what") == "summary", ev
        for v in ev.summary.value:
            assert v.WhichOneof("value") == "simple_value", v
            got.append((v.tag, ev.step, v.simple_value, ev.wall_time))
    assert got == want, f"records: {first_diff(got, want)}"

    # What TensorBoard shows: EventAccumulator, the loader behind its scalar dashboard.
    acc = event_accumulator.EventAccumulator(event_file, size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert sorted(tags) == sorted({t for t, *_ in want}), tags
    for tag in tags:
        got_tag = [(tag, e.step, e.value, e.wall_time) for e in acc.Scalars(tag)]
        want_tag = [w for w in want if w[0] == tag]
        assert got_tag == want_tag, f"EventAccumulator: {first_diff(got_tag, want_tag)}"
    print(f"ok: {len(events)} records, {len(want)} scalars over {len(tags)} tags ({', '.join(sorted(tags))}) "
          f"match exactly in {os.path.basename(event_file)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tensorboard_check.py EXPECT.json")
    main(sys.argv[1])
