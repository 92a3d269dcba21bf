#!/usr/bin/env bash
# One short GPU check (about 10 minutes on one H100/H200; a GPU machine is lent for minutes). It
# finds the CUDA PJRT plugin and runs, through GOMLX_BACKEND=xla:<plugin>:
#   1. step1b: a ~1.1B-parameter Llama training step as the seed trains (bf16 weights with float32
#      masters, bf16 mixed precision, flash_attention_2), batch 2 x 2048: tokens/s and MFU;
#   2. the Mistral-7B LoRA step (r 16 all-linear, bf16 base, checkpointing, seq 2048, batch 1)
#      compiled from shapes by XLA's GPU compiler: its peak device memory beside the estimate and
#      the XLA-CPU figure of docs/PERFORMANCE.md;
#   3. one ZeRO-3 step (examples/zero, stage 3) over every visible GPU, when there are two or more;
#   4. the tiny SFT recipe, 50 steps with bf16, on the GPU and on the CPU (XLA CPU plugin): every
#      logged loss must agree within 2% (bf16's rounding differs between devices; the CPU runs of
#      docs/PERFORMANCE.md stay within 1% of PyTorch autocast over 50 steps).
#
#   tools/gpu/run.sh                    # from the repository root
#   PLUGIN=/path/xla_cuda_plugin.so PEAK_TFLOPS=989 tools/gpu/run.sh
#
# Without a Go toolchain on the machine, build the binaries beforehand and carry tools/gpu/bin:
#   go build -o tools/gpu/bin/ ./tools/gpu/step1b ./cmd/handbook ./examples/zero
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
gpus="$(nvidia-smi -L 2>/dev/null | wc -l || echo 1)"
peak="${PEAK_TFLOPS:-989}" # dense bf16 TFLOP/s of an H100/H200 SXM
# No preallocation: nvidia-smi then shows what the programs use.
export GOMLX_BACKEND="xla:$plugin,preallocate=false"

bin=tools/gpu/bin
mkdir -p "$bin" /tmp/gpu
if command -v go >/dev/null 2>&1; then
  go build -o "$bin/" ./tools/gpu/step1b ./cmd/handbook ./examples/zero
fi

# peak_mib CMD...: runs CMD while sampling nvidia-smi every 100 ms; prints the peak MiB used.
peak_mib() {
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > /tmp/gpu/smi.txt &
  local smi=$!
  "$@"
  kill "$smi" 2>/dev/null || true
  echo "peak device memory: $(sort -n /tmp/gpu/smi.txt | tail -n1) MiB (nvidia-smi, first GPU)"
}

echo "== 1. 1.1B Llama step (batch 2 x 2048, bf16, flash_attention_2)"
peak_mib timeout 240 "$bin/step1b" --batch 2 --seq 2048 --steps 6 --peak_tflops "$peak" | tee /tmp/gpu/step1b.txt
grep '^{' /tmp/gpu/step1b.txt | tail -n1 | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("1.1B: %.0f tokens/s, %.1f%% MFU (peak %g TFLOP/s, %s)" % (r["tokens_per_s"], 100*r["mfu"], r["peak_tflops"], r["dtype"]))'

echo "== 2. Mistral-7B LoRA step, compiled by XLA for this GPU (shapes only)"
timeout 180 "$bin/handbook" estimate --model zero/testdata/mistral7b_config.json --lora --seq 2048 --batch 1 \
  --gradient_checkpointing --gpu_memory 24GiB --xla --xla_backend "$GOMLX_BACKEND"

if [[ "$gpus" -ge 2 ]]; then
  echo "== 3. one ZeRO-3 step over $gpus GPUs (examples/zero)"
  timeout 120 "$bin/zero" --stage 3 --steps 1
else
  echo "== 3. ZeRO-3 step skipped: $gpus GPU visible (it needs two or more)"
fi

echo "== 4. tiny SFT, 50 bf16 steps on the GPU and on the CPU"
for dev in gpu cpu; do
  out="/tmp/gpu/tiny-$dev"
  rm -rf "$out"
  if [[ "$dev" == cpu ]]; then
    tools/install-xla-cpu.sh >/dev/null
    backend_cfg="xla:$HOME/.cache/handbook/xla-cpu/pjrt_c_api_cpu_plugin.so"
  else
    backend_cfg="$GOMLX_BACKEND"
  fi
  GOMLX_BACKEND="$backend_cfg" timeout 120 "$bin/handbook" sft recipes/tiny/sft/config_full.yaml --bf16=true \
    --max_steps=50 --logging_steps=5 --eval_strategy=no --save_strategy=no --output_dir="$out" > "$out.log" 2>&1 || { cat "$out.log"; exit 1; }
done
python3 - <<'PY'
import json
def losses(d):
    return [json.loads(l)["loss"] for l in open(d + "/metrics.jsonl") if '"loss"' in l]
g, c = losses("/tmp/gpu/tiny-gpu"), losses("/tmp/gpu/tiny-cpu")
worst = max(abs(a - b) / abs(b) for a, b in zip(g, c))
print("tiny SFT losses, GPU vs CPU:", ["%.4f/%.4f" % p for p in zip(g, c)])
print("largest relative difference %.2e: %s" % (worst, "PASS" if worst <= 0.02 and len(g) == len(c) > 0 else "FAIL"))
PY
