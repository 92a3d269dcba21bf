#!/usr/bin/env bash
# Multi-process check of the CUDA PJRT plugin on one GPU machine (≤ 5 minutes): two processes on
# localhost join the rendezvous and create their PJRT clients with node_id/num_nodes and the
# key-value callbacks (multihost/xlaclient), then
#   1. each checks the client sees the whole job (tools/multihost: process index = rank, global
#      devices = both processes' addressable devices, each device owned by its process);
#   2. rank 1 is killed with SIGKILL while both hold; rank 0 must end within 30 s with an error
#      naming rank 1.
# With two or more GPUs rank r drives GPU r; with one, both drive GPU 0 (client creation and the
# topology exchange do not need separate GPUs; collectives would).
#
#   tools/multihost/gpu-check.sh                    # from the repository root
#   PLUGIN=/path/xla_cuda_plugin.so tools/multihost/gpu-check.sh
#
# Without a Go toolchain there, build first and carry the binary:
#   go build -o tools/multihost/bin/multihost ./tools/multihost
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"

plugin="${PLUGIN:-}"
if [[ -z "$plugin" ]]; then
  # jax-cuda13-pjrt / jax-cuda12-pjrt install the namespace package jax_plugins.xla_cuda13 / 12.
  plugin="$(python3 - <<'PY' 2>/dev/null || true
import importlib.util, os
for name in ("jax_plugins.xla_cuda13", "jax_plugins.xla_cuda12"):
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        continue
    if spec and spec.submodule_search_locations:
        so = os.path.join(list(spec.submodule_search_locations)[0], "xla_cuda_plugin.so")
        if os.path.isfile(so):
            print(so)
            break
PY
)"
fi
if [[ -z "$plugin" ]]; then
  echo "gpu-check: no xla_cuda_plugin.so found (pip install jax-cuda13-pjrt, or set PLUGIN=)" >&2
  exit 1
fi
echo "PJRT plugin: $plugin"
gpus="$(nvidia-smi -L 2>/dev/null | grep -c "^GPU" || true)"
echo "GPUs: $gpus"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true

bin=tools/multihost/bin/multihost
if [[ ! -x "$bin" ]]; then
  mkdir -p tools/multihost/bin
  go build -o "$bin" ./tools/multihost
fi
logs="$(mktemp -d)"
port=$((29500 + RANDOM % 1000))
devices() { if (( gpus >= 2 )); then echo "$1"; else echo 0; fi; }
start() { # rank, extra flags…; the process id is then in $!
  local rank=$1; shift
  "$bin" -plugin "$plugin" -num_machines 2 -machine_rank "$rank" -main_process_ip 127.0.0.1 \
    -main_process_port "$port" -visible_devices "$(devices "$rank")" -join_timeout 2m "$@" \
    >"$logs/rank$rank.out" 2>"$logs/rank$rank.err" &
}

status=0
echo "== 1. both processes see the whole job"
start 0; p0=$!; start 1; p1=$!
wait "$p0" || status=1
wait "$p1" || status=1
cat "$logs/rank0.out" "$logs/rank1.out"
grep -h -v '^I0000\|^WARNING: All log' "$logs/rank0.err" "$logs/rank1.err" || true

echo "== 2. SIGKILL of rank 1 ends rank 0 with an error naming it"
port=$((port + 1))
start 0 -hold; p0=$!; start 1 -hold; p1=$!
for _ in $(seq 600); do
  if grep -q holding "$logs/rank0.out" 2>/dev/null && grep -q holding "$logs/rank1.out" 2>/dev/null; then break; fi
  sleep 0.2
done
kill -9 "$p1"
start_s=$(date +%s)
code=0
if timeout 30 tail --pid="$p0" -f /dev/null; then
  wait "$p0" || code=$?
else
  code=124
  kill -9 "$p0" 2>/dev/null || true
fi
echo "rank 0 exited with $code after $(( $(date +%s) - start_s )) s:"
grep -h -v '^I0000\|^WARNING: All log' "$logs/rank0.err" || true
if [[ $code -ne 3 ]] || ! grep -q "rank 1 (" "$logs/rank0.err"; then
  echo "FAIL: rank 0 did not end with an error naming rank 1"
  status=1
else
  echo "PASS: rank 0 ended naming rank 1"
fi
rm -rf "$logs"
exit $status
