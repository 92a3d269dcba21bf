#!/usr/bin/env python3
"""Golden for bf16 mixed precision: PyTorch autocast-bf16 training of the bench model on CPU.

The bench model (docs/PERFORMANCE.md: Llama, vocab 4096, hidden 256, 4 layers, 4 heads, SwiGLU
688, untied head) starts from weights both sides compute from one formula (splitmix64 of the
tensor's index in sorted-name order and the element's index, mapped to uniform(-a, a) with
a = 0.02·√3, i.e. std 0.02; RMSNorm weights 1), so no 21 MB checkpoint is committed. It trains
50 steps on a cycle of 5 fixed batches (2 rows of 128 tokens, each a random 32-token motif
repeated 4 times; labels = inputs), AdamW (lr 3e-4, weight decay 0.01 except on norm weights as transformers' Trainer groups it,
defaults otherwise), max_grad_norm 1, constant LR:

  fp32            float32 weights and compute
  bf16_eager      torch.autocast("cpu", bfloat16) around the forward pass and the loss, float32
                  master weights, AdamW state and gradients (what transformers' Trainer does with
                  bf16=True on a float32 model), eager attention
  bf16_sdpa       the same with attn_implementation="sdpa": a second, equally valid bf16 run that
                  differs from bf16_eager only in how attention rounds

Each run also records the untrained model's per-token cross entropy on the first batch
(token_loss): where a bf16 implementation rounds decides those values, so Go's must be closer to
torch's bf16 ones than bf16 is to float32.

The spread between bf16_eager and bf16_sdpa measures how far two correct bf16 implementations
drift apart over the run; the Go test's tolerance is derived from it (train/bf16_test.go).

Writes train/testdata/bf16_autocast.json. Regenerate only on purpose.
"""
import json
import math
import pathlib

import numpy as np
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

root = pathlib.Path(__file__).resolve().parents[2]
CONFIG = dict(vocab_size=4096, hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
              num_key_value_heads=4, max_position_embeddings=256, tie_word_embeddings=False, hidden_act="silu",
              rms_norm_eps=1e-6, rope_theta=10000.0)
STEPS, BATCHES, BATCH, SEQ = 50, 5, 2, 128
LR, WD, MAX_NORM, MOTIF = 3e-4, 0.01, 1.0, 32

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix(seed, n):
    """splitmix64 outputs for counters 1..n of stream seed (numpy uint64 wraps mod 2^64)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(
            0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def formula_weights(model):
    a = 0.02 * math.sqrt(3)
    state = {}
    for i, name in enumerate(sorted(model.state_dict().keys())):
        t = model.state_dict()[name]
        if name.endswith("norm.weight"):
            state[name] = torch.ones_like(t)
            continue
        u = (splitmix(i + 1, t.numel()) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
        state[name] = torch.from_numpy(((2 * u - 1) * a).astype(np.float32)).reshape(t.shape)
    model.load_state_dict(state)


def token_losses(model, autocast, ids):
    """Per-token cross entropy of the untrained model on ids, [rows, seq-1], flattened."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = model(input_ids=ids).logits
    logp = torch.log_softmax(logits.float()[:, :-1], dim=-1)
    return (-logp.gather(-1, ids[:, 1:, None])[..., 0]).flatten().tolist()


def train(attn, autocast, batches):
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**CONFIG, use_cache=False, attn_implementation=attn)).float()
    formula_weights(model)
    first = token_losses(model, autocast, batches[0])
    model.train()
    # transformers' Trainer: no weight decay on biases and norm weights.
    decay = [p for n, p in model.named_parameters() if "norm" not in n and not n.endswith(".bias")]
    no_decay = [p for n, p in model.named_parameters() if "norm" in n or n.endswith(".bias")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}], lr=LR)
    losses, norms = [], []
    for step in range(STEPS):
        ids = batches[step % BATCHES]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)))
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    return losses, norms, first


def main():
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(13)
    # Each row repeats a random 32-token motif: the model learns to copy, so the loss falls steadily
    # instead of oscillating as it does when memorizing random tokens at a high learning rate
    # (where rounding differences are amplified into chaotic trajectories).
    batches = [torch.randint(0, CONFIG["vocab_size"], (BATCH, MOTIF), generator=g).repeat(1, SEQ // MOTIF)
               for _ in range(BATCHES)]
    runs = {}
    for name, attn, autocast in [("fp32", "eager", False), ("bf16_eager", "eager", True), ("bf16_sdpa", "sdpa", True)]:
        losses, norms, first = train(attn, autocast, batches)
        runs[name] = {"loss": losses, "grad_norm": norms, "token_loss": first}
        print(name, "first", losses[0], "last", losses[-1])
    golden = {
        "config": {**CONFIG, "model_type": "llama"},
        "steps": STEPS, "learning_rate": LR, "weight_decay": WD, "max_grad_norm": MAX_NORM,
        "batches": [b.tolist() for b in batches],
        "runs": runs,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    path = root / "train" / "testdata" / "bf16_autocast.json"
    path.write_text(json.dumps(golden))
    print(path)


if __name__ == "__main__":
    main()
