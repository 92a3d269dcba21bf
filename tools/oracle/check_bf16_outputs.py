#!/usr/bin/env python3
"""Check that what a bf16 run of handbook saved loads in transformers / PEFT as the Python stack
expects, and computes what Go computes.

    check_bf16_outputs.py MODEL_DIR TOKENS_JSON GO_LOSS [--adapter ADAPTER_DIR]

MODEL_DIR is a model saved by `handbook sft RECIPE --bf16=true --dtype=bfloat16` (with --adapter:
the bf16 base the adapter was trained on, ADAPTER_DIR the adapter `handbook sft` saved). Checks:
  - config.json says torch_dtype bfloat16 and every tensor in the safetensors files is BF16;
    with --adapter, every adapter tensor is F32;
  - AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype="auto") loads cleanly (no missing,
    unexpected or mismatched tensor) with bf16 parameters; PeftModel.from_pretrained puts the
    adapter on that bf16 base with float32 LoRA weights (PEFT's autocast_adapter_dtype);
  - the mean next-token loss on TOKENS_JSON, computed in float32 from those weights, equals
    GO_LOSS (`handbook eval --tokens TOKENS_JSON --json`, which upcasts the bf16 weights exactly)
    within 1e-4 relative.
Prints one JSON line {"ok": ...}; exits 0 when ok, 1 otherwise.
"""
import argparse
import json
import pathlib
import sys

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM


def dtypes_in(path):
    out = {}
    with safe_open(str(path), "pt") as f:
        for k in f.keys():
            out[k] = f.get_slice(k).get_dtype()
    return out


def loss_of(model, ids):
    with torch.no_grad():
        return float(model(input_ids=ids, labels=ids).loss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("tokens")
    ap.add_argument("go_loss", type=float)
    ap.add_argument("--adapter")
    a = ap.parse_args()
    d = pathlib.Path(a.model)
    verdict = {"ok": False, "model": a.model, "adapter": a.adapter, "go_loss": a.go_loss}
    problems = []
    cfg = json.loads((d / "config.json").read_text())
    if cfg.get("torch_dtype", cfg.get("dtype")) != "bfloat16":
        problems.append("config.json dtype is %r" % cfg.get("torch_dtype", cfg.get("dtype")))
    for f in d.glob("*.safetensors"):
        bad = {k: v for k, v in dtypes_in(f).items() if v != "BF16"}
        if bad:
            problems.append("%s: not BF16: %s" % (f.name, sorted(bad.items())[:3]))
    ids = torch.tensor(json.loads(pathlib.Path(a.tokens).read_text()))

    model, info = AutoModelForCausalLM.from_pretrained(d, dtype="auto", attn_implementation="eager", output_loading_info=True)
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(key):
            problems.append("%s: %s" % (key, info[key]))
    if {p.dtype for p in model.parameters()} != {torch.bfloat16}:
        problems.append("parameters are %s, not bfloat16" % {p.dtype for p in model.parameters()})
    if a.adapter:
        from peft import PeftModel
        adapter_file = pathlib.Path(a.adapter) / "adapter_model.safetensors"
        bad = {k: v for k, v in dtypes_in(adapter_file).items() if v != "F32" and ("lora_A" in k or "lora_B" in k)}
        if bad:
            problems.append("adapter tensors not F32: %s" % sorted(bad.items())[:3])
        model = PeftModel.from_pretrained(model, a.adapter)
        lora = {p.dtype for n, p in model.named_parameters() if "lora_" in n}
        if lora != {torch.float32}:
            problems.append("PEFT's LoRA weights on the bf16 base are %s, not float32" % lora)
        verdict["lora_dtype"] = str(lora)
    model = model.float().eval()
    py_loss = loss_of(model, ids)
    verdict["py_loss"] = py_loss
    rel = abs(py_loss - a.go_loss) / abs(py_loss)
    verdict["rel"] = rel
    if rel > 1e-4:
        problems.append("loss %.6f in transformers, %.6f in Go (rel %.2e)" % (py_loss, a.go_loss, rel))
    verdict["problems"] = problems
    verdict["ok"] = not problems
    print(json.dumps(verdict))
    sys.exit(0 if verdict["ok"] else 1)


if __name__ == "__main__":
    main()
