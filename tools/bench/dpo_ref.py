#!/usr/bin/env python3
"""PyTorch eager reference for the Go DPO benchmark (dpo.BenchmarkDPOStep, docs/PERFORMANCE.md).

The bench model (testdata/bench/config.json), 4 pairs of a 128-token prompt and 128-token
completions (8 rows x 256 tokens). One step = policy forward on [chosen; rejected], reference
forward without gradients (a frozen copy of the policy, as TRL keeps when ref_model is None),
summed completion log-probs, TRL's sigmoid loss (beta 0.1), backward, gradient clipping at 1.0,
AdamW step. 3 warm-up steps, then --steps timed steps, torch.set_num_threads(os.cpu_count()).

    python tools/bench/dpo_ref.py [--steps 5]
"""

import argparse
import copy
import json
import os
import resource
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def logps(model, ids, labels):
    logits = model(input_ids=ids, use_cache=False).logits[:, :-1]
    target = labels[:, 1:]
    mask = target != -100
    lp = torch.gather(logits.log_softmax(-1), 2, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (lp * mask).sum(-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "../../testdata/bench/config.json")) as f:
        cfg = LlamaConfig(**json.load(f), use_cache=False)
    policy = LlamaForCausalLM._from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    ref = copy.deepcopy(policy).eval().requires_grad_(False)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (8, 256), generator=g)
    labels = ids.clone()
    labels[:, :128] = -100
    beta = 0.1

    def step():
        pi = logps(policy, ids, labels)
        with torch.no_grad():
            rf = logps(ref, ids, labels)
        delta = (pi[:4] - rf[:4]) - (pi[4:] - rf[4:])
        loss = -F.logsigmoid(beta * delta).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    dt = (time.perf_counter() - t0) / a.steps
    print(json.dumps({"s_per_step": round(dt, 4), "tokens_per_s": round(8 * 256 / dt, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "torch": torch.__version__, "threads": torch.get_num_threads(), "last_loss": round(loss, 4)}))


if __name__ == "__main__":
    main()
