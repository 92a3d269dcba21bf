#!/usr/bin/env python3
"""Check that transformers loads a checkpoint directory written by the Go code and computes the
same logits as a golden reference.

    check_go_saved.py DIR REFERENCE_JSON [--tol 1e-4]

DIR is loaded with transformers.AutoModelForCausalLM.from_pretrained (eager attention, float32).
Loading must be clean: no missing, unexpected or shape-mismatched tensors (transformers would
otherwise silently random-initialise them). The logits for REFERENCE_JSON's "input_ids" must match
its "logits" within tol * max|reference logit|; the loss (labels = input_ids) is reported too and
must match within 1e-5 when the reference has one (only checked when tol <= 1e-4, i.e. f32 saves).
Prints one JSON line {"ok": ..., ...}; exits 0 when ok, 1 on mismatch, 2 when loading fails.
"""

import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("reference_json")
    ap.add_argument("--tol", type=float, default=1e-4, help="relative to max|reference logit|")
    a = ap.parse_args()

    verdict = {"ok": False, "dir": a.dir, "reference": a.reference_json, "tol": a.tol}
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        with open(a.reference_json) as f:
            ref = json.load(f)
        model, info = AutoModelForCausalLM.from_pretrained(
            a.dir, attn_implementation="eager", dtype=torch.float32, output_loading_info=True
        )
        model.eval()
    except Exception as e:  # noqa: BLE001 - report any loading failure as a verdict
        verdict["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(verdict))
        sys.exit(2)

    problems = {k: sorted(map(str, v)) for k, v in info.items() if v}
    verdict["model_type"] = model.config.model_type
    if problems:
        verdict["error"] = "loading not clean"
        verdict["loading_info"] = problems
        print(json.dumps(verdict))
        sys.exit(1)

    ids = torch.tensor(ref["input_ids"], dtype=torch.long)
    want = torch.tensor(ref["logits"], dtype=torch.float32)
    with torch.no_grad():
        out = model(ids, labels=ids)
    got = out.logits.float()
    if got.shape != want.shape:
        verdict["error"] = f"logits shape {list(got.shape)} != reference {list(want.shape)}"
        print(json.dumps(verdict))
        sys.exit(1)
    max_abs = float(want.abs().max())
    diff = float((got - want).abs().max())
    verdict.update(max_abs_diff=diff, max_abs_logit=max_abs, rel=diff / max_abs)
    ok = diff <= a.tol * max_abs
    if "loss" in ref:
        dl = abs(float(out.loss) - ref["loss"])
        verdict["loss_abs_diff"] = dl
        if a.tol <= 1e-4:
            ok = ok and dl <= 1e-5
    verdict["ok"] = bool(ok)
    print(json.dumps(verdict))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
