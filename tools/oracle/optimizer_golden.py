#!/usr/bin/env python3
"""Golden for train's optimizers: torch.optim.AdamW, RMSprop and SGD (the classes transformers
builds for optim adamw_torch, rmsprop and sgd) on a fixed parameter and gradient sequence.

Writes train/testdata/optimizers.json. Regenerate only on purpose.
"""
import json
import pathlib

import torch

torch.manual_seed(0)
p0 = torch.randn(16, dtype=torch.float32)
grads = [torch.randn(16, dtype=torch.float32) * s for s in (1.0, 0.1, 3.0, 0.01)]
out = {"param": p0.tolist(), "grads": [g.tolist() for g in grads], "cases": []}
cases = [
    ("adamw", dict(lr=1e-3, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8)),
    ("adamw", dict(lr=5e-2, weight_decay=0.1, betas=(0.8, 0.95), eps=1e-6)),
    ("rmsprop", dict(lr=1e-2, weight_decay=0.0, alpha=0.99, eps=1e-8)),
    ("rmsprop", dict(lr=3e-2, weight_decay=0.1, alpha=0.9, eps=1e-6)),
    ("sgd", dict(lr=1e-1, weight_decay=0.0)),
    ("sgd", dict(lr=5e-2, weight_decay=0.1)),
]
classes = {"adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}
for name, kw in cases:
    p = torch.nn.Parameter(p0.clone())
    opt = classes[name]([p], **kw)
    steps = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        steps.append(p.detach().clone().tolist())
    case = {"optim": name, "after_each_step": steps, **{k: v for k, v in kw.items() if k != "betas"}}
    if "betas" in kw:
        case["beta1"], case["beta2"] = kw["betas"]
    out["cases"].append(case)
path = pathlib.Path(__file__).resolve().parents[2] / "train" / "testdata" / "optimizers.json"
path.write_text(json.dumps(out))
print(path)
