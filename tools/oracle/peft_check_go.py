#!/usr/bin/env python3
"""Check that PEFT loads an adapter written by handbook (tools/oracle/lorasave) and computes the
same logits as the Go code; also that merge_and_unload gives the Go merged model's logits.

    peft_check_go.py ADAPTER_DIR [--tol 1e-4]

ADAPTER_DIR holds adapter_config.json, adapter_model.safetensors and go_reference.safetensors
(input_ids, logits, merged_logits). The base is adapter_config.json's base_model_name_or_path,
relative to the repository root. Loading must be clean (no missing or unexpected adapter keys).
Prints one JSON line {"ok": ...}; exits 0 when ok, 1 on mismatch.
"""
import argparse
import json
import pathlib
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

root = pathlib.Path(__file__).resolve().parents[2]


def rel_err(got, want):
    return float((got - want).abs().max() / want.abs().max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    d = pathlib.Path(a.dir)
    cfg = json.loads((d / "adapter_config.json").read_text())
    ref = load_file(d / "go_reference.safetensors")
    base = AutoModelForCausalLM.from_pretrained(root / cfg["base_model_name_or_path"], dtype=torch.float32,
                                                attn_implementation="eager")
    pm = PeftModel.from_pretrained(base, d)
    pm.eval()
    # PEFT warns and leaves B at zero on a key mismatch: check every adapter tensor loaded.
    saved = load_file(d / "adapter_model.safetensors")
    state = pm.state_dict()
    missing = [k for k in saved if k.replace(".weight", ".default.weight") not in state]
    with torch.no_grad():
        logits = pm(input_ids=ref["input_ids"]).logits
        with pm.disable_adapter():
            base_logits = pm(input_ids=ref["input_ids"]).logits
        merged = pm.merge_and_unload()(input_ids=ref["input_ids"]).logits
    verdict = {"logits_rel_err": rel_err(logits, ref["logits"]), "merged_rel_err": rel_err(merged, ref["merged_logits"]),
               "adapter_effect": rel_err(base_logits, logits),  # how far the adapter moves the logits
               "unloaded_keys": missing, "tol": a.tol}
    verdict["ok"] = not missing and verdict["logits_rel_err"] <= a.tol and verdict["merged_rel_err"] <= a.tol
    print(json.dumps(verdict))
    sys.exit(0 if verdict["ok"] else 1)


if __name__ == "__main__":
    main()
