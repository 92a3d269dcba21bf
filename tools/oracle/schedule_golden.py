#!/usr/bin/env python3
"""Golden for train.Schedule: transformers.get_scheduler multipliers for every supported name.

Writes train/testdata/schedules.json. Regenerate only on purpose.
"""
import json
import pathlib

import torch
from transformers import get_scheduler

cases = []
for name, warmup, total, kwargs in [
    ("linear", 3, 20, {}), ("linear", 0, 7, {}), ("cosine", 5, 30, {}), ("cosine", 0, 10, {}),
    ("constant", 4, 10, {}), ("constant_with_warmup", 4, 10, {}),
    ("cosine_with_min_lr", 2, 25, {"min_lr_rate": 0.1}), ("inverse_sqrt", 4, 40, {}), ("inverse_sqrt", 0, 12, {}),
]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=total, scheduler_specific_kwargs=kwargs)
    factors = []
    for _ in range(total + 2):
        factors.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    cases.append({"name": name, "warmup": warmup, "total": total, "min_lr_rate": kwargs.get("min_lr_rate", 0.0), "factors": factors})
path = pathlib.Path(__file__).resolve().parents[2] / "train" / "testdata" / "schedules.json"
path.write_text(json.dumps(cases))
print(path)
