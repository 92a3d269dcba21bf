#!/usr/bin/env python3
"""HF `tokenizers` (Rust) encode throughput on tokenizer/testdata/corpus.json.gz.

Usage: RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false python tools/bench/tokenizer_rust.py NAME=TOKENIZER_JSON...

For each tokenizer it prints one line "NAME MODE MB/s" for two modes, both
add_special_tokens=False and single-threaded (the caller sets RAYON_NUM_THREADS=1):
  batch  tokenizer.encode_batch(corpus): one call, no per-line Python overhead
  loop   tokenizer.encode(line) for each line: what the Go benchmark does, plus
         ~1 µs of Python call overhead per line
Each figure is the best of --repeat timed passes after one warm-up pass (which fills
the BPE cache, as b.Loop's first iterations do in Go).
"""

import argparse
import gzip
import json
import os
import time

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tokenizers", nargs="+", help="NAME=path/to/tokenizer.json")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if os.environ.get("RAYON_NUM_THREADS") != "1":
        raise SystemExit("set RAYON_NUM_THREADS=1 (single-threaded comparison)")
    with gzip.open(os.path.join(ROOT, "tokenizer", "testdata", "corpus.json.gz"), "rt", encoding="utf-8") as f:
        corpus = json.load(f)
    mb = sum(len(s.encode("utf-8")) for s in corpus) / 1e6
    for spec in args.tokenizers:
        name, path = spec.split("=", 1)
        tok = Tokenizer.from_file(path)
        modes = {
            "batch": lambda: tok.encode_batch(corpus, add_special_tokens=False),
            "loop": lambda: [tok.encode(s, add_special_tokens=False) for s in corpus],
        }
        for mode, fn in modes.items():
            fn()  # warm-up
            best = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
            print(f"{name} {mode} {mb / best:.2f}", flush=True)


if __name__ == "__main__":
    main()
