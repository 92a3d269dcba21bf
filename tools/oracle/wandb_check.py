"""Have the PyPI wandb package's `wandb sync` upload a Go-written offline run, and check what arrives.

    WANDB_ORACLE_DIR=/tmp/wb go test ./train/wandb -run TestOracleRun    # a run from synthetic rows, or
    WANDB_ORACLE_DIR=/tmp/wb go test . -run TestOracleWandbRun            # the tiny recipe trained with report_to wandb
    python tools/oracle/wandb_check.py /tmp/wb/expect.json

expect.json (written by either test) names the run directory and lists the config and every metrics.jsonl row the
run was given. A local stand-in for the W&B server (GraphQL plus the file_stream endpoint) records what wandb-core
— the reader and uploader inside the wandb wheel — sends while syncing: the run's config (UpsertBucket), its
history rows and summary (file_stream) and its files. The config must come back with equal values, and every
metrics row as one history row with transformers' key names and equal values. Exits non-zero on any mismatch.
"""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECEIVED = {"graphql": [], "history": [], "summary": [], "files": [], "uploads": []}


class FakeWandb(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _json(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        n = int(self.headers.get("Content-Length", 0))
        RECEIVED["uploads"].append((self.path, self.rfile.read(n)))
        self._json({})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(n)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:  # wandb-core's own telemetry (protobuf), not part of the run
            return self._json({})
        if self.path.startswith("/graphql"):
            return self._json(self.graphql(body))
        if self.path.endswith("/file_stream"):
            for name, chunk in (body.get("files") or {}).items():
                for line in chunk.get("content", []):
                    key = "history" if name == "wandb-history.jsonl" else "summary" if name == "wandb-summary.json" else None
                    if key:
                        RECEIVED[key].append(json.loads(line))
            for name in body.get("uploaded", []) or []:
                RECEIVED["files"].append(name)
            return self._json({"exitcode": None, "limits": {}})
        self._json({})

    def graphql(self, body):
        op = body.get("operationName") or ""
        v = body.get("variables") or {}
        RECEIVED["graphql"].append((op, v))
        entity = {"id": "e1", "name": v.get("entity") or "tester"}
        if op == "UpsertBucket":
            project = {"id": "p1", "name": v.get("project") or "uncategorized", "entity": entity}
            return {"data": {"upsertBucket": {"inserted": True, "bucket": {
                "id": "b1", "name": v.get("name"), "displayName": v.get("displayName"), "description": None,
                "config": v.get("config") or "{}", "sweepName": None, "project": project, "historyLineCount": 0}}}}
        if op == "CreateRunFiles":
            base = f"http://127.0.0.1:{self.server.server_port}/upload/"
            return {"data": {"createRunFiles": {"runID": "b1", "uploadHeaders": [],
                                                "files": [{"name": f, "uploadUrl": base + f} for f in v.get("files", [])]}}}
        if op in ("ServerFeaturesQuery", "ServerInfo"):
            return {"data": {"serverInfo": {"features": [], "cliVersionInfo": {}, "latestLocalVersionInfo": None}}}
        if op == "Viewer":
            return {"data": {"viewer": {"id": "u1", "entity": "tester", "username": "tester", "flags": "{}",
                                        "teams": {"edges": []}}}}
        return {"data": {}}


def main(expect_path: str) -> None:
    with open(expect_path) as f:
        expect = json.load(f)
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeWandb)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update({"WANDB_BASE_URL": f"http://127.0.0.1:{server.server_port}", "WANDB_API_KEY": "x" * 40,
                "WANDB_SILENT": "true", "HOME": os.path.dirname(expect_path)})
    wandb_cli = os.path.join(os.path.dirname(sys.executable), "wandb")
    proc = subprocess.run([wandb_cli, "sync", expect["run_dir"]], env=env, capture_output=True, text=True, timeout=300)
    server.shutdown()
    assert proc.returncode == 0, f"wandb sync failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"

    ops = [op for op, _ in RECEIVED["graphql"]]
    upserts = [v for op, v in RECEIVED["graphql"] if op == "UpsertBucket"]
    assert upserts, f"no UpsertBucket among {ops}"
    config, meta = {}, {}
    for v in upserts:
        if v.get("config"):
            sent = json.loads(v["config"])
            meta.update(sent.get("_wandb", {}).get("value", {}))
            config.update({k: c["value"] for k, c in sent.items() if k != "_wandb"})
    # wandb-core leaves empty mappings out of the uploaded config (it does so for runs written by the wandb
    # Python package too), so an empty dict is expected to be absent.
    want_config = {k: v for k, v in expect["config"].items() if v != {}}
    assert config == want_config, f"config: got {sorted(config)} want {sorted(want_config)}; diffs " + str(
        {k: (config.get(k), want_config.get(k)) for k in set(config) | set(want_config) if config.get(k) != want_config.get(k)})
    # The metric definitions as wandb-core summarizes them for a run written by wandb itself with transformers'
    # define_metric calls: train/global_step defined, and the x axis of every metric ("*") with step_sync.
    want_m = [{"1": "train/global_step", "6": [3], "7": []}, {"2": "*", "5": 1, "6": [1], "7": []}]
    assert meta.get("m") == want_m, f"metric definitions: got {meta.get('m')} want {want_m}"
    assert upserts[0].get("name") == expect["run_id"] and upserts[0].get("project") == expect["project"], upserts[0]

    history = RECEIVED["history"]
    rows = expect["rows"]
    assert len(history) == len(rows), f"got {len(history)} history rows, want {len(rows)}"
    for i, (got, want) in enumerate(zip(history, rows)):
        for k, value in want.items():
            assert k in got and got[k] == value, f"row {i}: {k}: got {got.get(k)!r} want {value!r}"
        assert got["_step"] == i, f"row {i}: _step {got['_step']}"
    summary = {}
    for s in RECEIVED["summary"]:
        summary.update(s)
    for k, value in expect["summary"].items():
        assert summary.get(k) == value, f"summary {k}: got {summary.get(k)!r} want {value!r}"
    uploaded = [p.rsplit("/", 1)[-1] for p, _ in RECEIVED["uploads"]]
    for name in expect["files"]:
        assert name in uploaded, f"run file {name} not uploaded (uploaded: {uploaded})"
    print(f"ok: wandb sync uploaded run {expect['run_id']}: config of {len(config)} keys, {len(history)} history rows, "
          f"summary {sorted(expect['summary'])} and files {expect['files']} match (GraphQL ops: {sorted(set(ops))})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: wandb_check.py EXPECT.json")
    main(sys.argv[1])
