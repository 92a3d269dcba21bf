#!/usr/bin/env python3
"""Golden for train.AdamW: torch.optim.AdamW on a fixed parameter and gradient sequence.

Writes train/testdata/adamw.json. Regenerate only on purpose.
"""
import json
import pathlib

import torch

torch.manual_seed(0)
p0 = torch.randn(16, dtype=torch.float32)
grads = [torch.randn(16, dtype=torch.float32) * s for s in (1.0, 0.1, 3.0, 0.01)]
out = {"param": p0.tolist(), "grads": [g.tolist() for g in grads], "cases": []}
for lr, wd, betas, eps in [(1e-3, 0.0, (0.9, 0.999), 1e-8), (5e-2, 0.1, (0.8, 0.95), 1e-6)]:
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.AdamW([p], lr=lr, weight_decay=wd, betas=betas, eps=eps)
    steps = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        steps.append(p.detach().clone().tolist())
    out["cases"].append({"lr": lr, "weight_decay": wd, "beta1": betas[0], "beta2": betas[1], "eps": eps, "after_each_step": steps})
path = pathlib.Path(__file__).resolve().parents[2] / "train" / "testdata" / "adamw.json"
path.write_text(json.dumps(out))
print(path)
