#!/usr/bin/env bash
# One-command GPU check (≤ 10 minutes on one H100/H200): finds the CUDA PJRT plugin, then runs
#   1. train's BenchmarkTrainStep (the bench model of docs/PERFORMANCE.md) and
#   2. a ~1.1B-parameter Llama training step (tools/gpu/step1b), bf16,
# through GOMLX_BACKEND=xla:<plugin>, printing tokens/s and MFU.
#
#   tools/gpu/run.sh                    # from the repository root
#   PLUGIN=/path/xla_cuda_plugin.so PEAK_TFLOPS=989 tools/gpu/run.sh
#
# Without a Go toolchain on the machine, build the binaries beforehand and carry tools/gpu/bin:
#   go test -c -o tools/gpu/bin/train.test ./train && go build -o tools/gpu/bin/step1b ./tools/gpu/step1b
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"

plugin="${PLUGIN:-}"
if [[ -z "$plugin" ]]; then
  # jax-cuda13-pjrt / jax-cuda12-pjrt install jax_plugins/xla_cuda1{3,2}/xla_cuda_plugin.so.
  for base in $(python3 -c 'import site,sys; print(" ".join(site.getsitepackages()+[site.getusersitepackages()]))' 2>/dev/null) \
              /usr/local/lib/python3*/dist-packages /usr/local/lib/python3*/site-packages \
              /usr/lib/python3*/dist-packages /opt/conda/lib/python3*/site-packages "$HOME"/.local/lib/python3*/site-packages \
              /opt/venv/lib/python3*/site-packages /usr/local/lib/go-xla "$HOME/.local/lib/go-xla"; do
    for cand in "$base"/jax_plugins/xla_cuda13/xla_cuda_plugin.so "$base"/jax_plugins/xla_cuda12/xla_cuda_plugin.so \
                "$base"/jax_plugins/*/xla_cuda_plugin.so "$base"/pjrt_c_api_cuda_plugin.so; do
      if [[ -f "$cand" ]]; then plugin="$cand"; break 2; fi
    done
  done
fi
if [[ -z "$plugin" ]]; then
  plugin="$(find / -xdev -name 'xla_cuda_plugin.so' -path '*jax_plugins*' 2>/dev/null | head -n1 || true)"
fi
if [[ -z "$plugin" ]]; then
  echo "gpu/run.sh: no xla_cuda_plugin.so found (pip install jax-cuda13-pjrt, or set PLUGIN=)" >&2
  exit 1
fi
echo "CUDA PJRT plugin: $plugin"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
export GOMLX_BACKEND="xla:$plugin"
peak="${PEAK_TFLOPS:-989}" # dense bf16 TFLOP/s of an H100/H200 SXM

mkdir -p tools/gpu/bin
if command -v go >/dev/null 2>&1; then
  go test -c -o tools/gpu/bin/train.test ./train
  go build -o tools/gpu/bin/step1b ./tools/gpu/step1b
fi

echo "== BenchmarkTrainStep (bench model, batch 8 x 256, fp32)"
(cd train && timeout 240 ../tools/gpu/bin/train.test -test.run '^$' -test.bench BenchmarkTrainStep -test.benchtime 20x) | tee /tmp/gpu_bench.txt
awk '/BenchmarkTrainStep/ { for (i=1;i<=NF;i++) if ($(i+1)=="tokens/s") print "bench tokens/s:", $i }' /tmp/gpu_bench.txt

echo "== 1.1B Llama step (batch 4 x 1024, bf16)"
timeout 300 tools/gpu/bin/step1b --batch 4 --seq 1024 --steps 6 --peak_tflops "$peak" | tee /tmp/gpu_step1b.txt
tail -n1 /tmp/gpu_step1b.txt | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("1.1B: %.0f tokens/s, %.1f%% MFU (peak %g TFLOP/s, %s)" % (r["tokens_per_s"], 100*r["mfu"], r["peak_tflops"], r["dtype"]))'
