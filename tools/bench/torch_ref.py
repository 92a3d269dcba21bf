#!/usr/bin/env python3
"""PyTorch reference for the Go training-step benchmark (see docs/PERFORMANCE.md).

The bench model: Llama-style decoder, vocab 4096, hidden 256, 4 layers, 4 heads (4 kv heads),
SwiGLU intermediate 688, untied LM head, float32; batch 8 x seq 256 of random tokens.
One step = forward + loss (labels = inputs) + backward + torch.optim.AdamW step + zero_grad.
3 warm-up steps, then --steps timed steps, on CPU with torch.set_num_threads(os.cpu_count()).

Prints one JSON line:
  {"s_per_step", "tokens_per_s", "peak_rss_mb", "torch", "transformers", "threads", "attn", ...}

    python tools/bench/torch_ref.py [--steps 10] [--attn eager|sdpa] [--tiny]

--tiny times the demo model instead (recipes/tiny/model/config.json, batch 32 x seq 64), the
shape of the Go BenchmarkTinyDemoStep in package sft.
"""

import argparse
import json
import os
import platform
import re
import resource
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

VOCAB, HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE = 4096, 256, 4, 4, 4, 688
BATCH, SEQ = 8, 256


def blas_info():
    m = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return m.group(1) if m else "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args()
    vocab, batch, seq = VOCAB, BATCH, SEQ

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    if a.tiny:
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "../../recipes/tiny/model/config.json")) as f:
            cfg = LlamaConfig(**json.load(f), use_cache=False)
        vocab, batch, seq = cfg.vocab_size, 32, 64
    else:
        cfg = LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=HIDDEN,
            intermediate_size=INTERMEDIATE,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            num_key_value_heads=KV_HEADS,
            max_position_embeddings=SEQ,
            tie_word_embeddings=False,
            hidden_act="silu",
            rms_norm_eps=1e-6,
            rope_theta=10000.0,
            use_cache=False,
        )
    model = LlamaForCausalLM._from_config(cfg, attn_implementation=a.attn, dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    ids = torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(0))

    def step():
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    dt = (time.perf_counter() - t0) / a.steps

    print(
        json.dumps(
            {
                "s_per_step": round(dt, 4),
                "tokens_per_s": round(batch * seq / dt, 1),
                # ru_maxrss is KiB on Linux, bytes on macOS
                "peak_rss_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                    / (1 << 20 if platform.system() == "Darwin" else 1 << 10),
                    1,
                ),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "threads": torch.get_num_threads(),
                "attn": a.attn,
                "steps": a.steps,
                "params": sum(p.numel() for p in model.parameters()),
                "last_loss": round(loss, 4),
                "blas": blas_info(),
            }
        )
    )


if __name__ == "__main__":
    main()
