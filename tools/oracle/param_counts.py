#!/usr/bin/env python3
"""Golden parameter counts for package zero's memory estimate: for each config.json under zero/testdata that
describes a model, the parameters transformers builds for it (on the meta device, no memory) and the
trainable parameters of a PEFT LoRA adapter with target_modules="all-linear", r=16 (on Mixtral: the attention
projections plus the router and stacked experts PEFT adapts as target_parameters).

Writes zero/testdata/param_counts.json (regenerate only on purpose):
    "$VENV/bin/python" tools/oracle/param_counts.py
"""
import json
import pathlib

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

root = pathlib.Path(__file__).resolve().parents[2]
testdata = root / "zero" / "testdata"
RANK = 16

out = {"transformers": transformers.__version__, "peft": peft.__version__, "lora_rank": RANK, "models": {}}
for path in sorted(testdata.glob("*_config.json")):
    cfg = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    total = sum(p.numel() for p in model.parameters())
    adapted = get_peft_model(model, LoraConfig(r=RANK, lora_alpha=2 * RANK, lora_dropout=0.0, target_modules="all-linear"))
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    out["models"][path.name] = {"parameters": total, "lora_all_linear_trainable": trainable}
    print(path.name, total, trainable)
(testdata / "param_counts.json").write_text(json.dumps(out, indent=1) + "\n")
