#!/usr/bin/env python3
"""PyTorch + PEFT reference for the Go LoRA training-step benchmark (lora/bench_test.go).

The bench model of tools/bench/torch_ref.py (Llama-style, vocab 4096, hidden 256, 4 layers,
float32; batch 8 x seq 256 of random tokens) with a LoRA adapter r=16, alpha=32, dropout 0,
target_modules="all-linear" (lm_head excluded), base frozen. One step = forward + loss +
backward + AdamW over the adapter parameters + zero_grad. --full times full fine-tuning of the
same model in the same process layout, for the LoRA/full ratio.

--config takes a model config.json instead (random weights, float32): the real-shape bench of
docs/PERFORMANCE.md is SmolLM2-135M's shapes, the Go BenchmarkRealShapeStep in package lora:

    python tools/bench/peft_ref.py --config testdata/bench/smollm2/config.json --batch 4 --attn sdpa [--full]

Prints one JSON line: {"mode", "s_per_step", "tokens_per_s", "peak_rss_mb", "trainable", ...}

    python tools/bench/peft_ref.py [--steps 10] [--full] [--threads N]
"""

import argparse
import json
import os
import platform
import resource
import time

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

VOCAB, HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE = 4096, 256, 4, 4, 4, 688
BATCH, SEQ = 8, 256


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--config", help="model config.json (default: the bench model)")
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--seq", type=int, default=SEQ)
    ap.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    if a.config:
        with open(a.config) as f:
            cfg = LlamaConfig(**{k: v for k, v in json.load(f).items() if k != "torch_dtype"}, use_cache=False)
    else:
        cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=INTERMEDIATE,
                          num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
                          max_position_embeddings=SEQ, tie_word_embeddings=False, hidden_act="silu",
                          rms_norm_eps=1e-6, rope_theta=10000.0, use_cache=False)
    model = LlamaForCausalLM._from_config(cfg, attn_implementation=a.attn, dtype=torch.float32)
    if not a.full:
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), generator=torch.Generator().manual_seed(0))

    def step():
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    c0 = time.process_time()
    for _ in range(a.steps):
        loss = step()
    dt = (time.perf_counter() - t0) / a.steps
    cpu = (time.process_time() - c0) / a.steps
    print(json.dumps({
        "mode": "full" if a.full else "lora",
        "s_per_step": round(dt, 4), "cpu_s_per_step": round(cpu, 4),
        "tokens_per_s": round(a.batch * a.seq / dt, 1), "attn": a.attn,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                             / (1 << 20 if platform.system() == "Darwin" else 1 << 10), 1),
        "trainable": sum(p.numel() for p in params), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "last_loss": round(loss, 4),
    }))


if __name__ == "__main__":
    main()
