#!/usr/bin/env python3
"""Goldens for package lora: PEFT adapters on the tiny testdata/models fixtures, their logits and
merge_and_unload weights, plus bitsandbytes NF4 quantization of a fixed tensor.

Writes under lora/testdata/ (regenerate only on purpose):
  peft_<case>/adapter_config.json, adapter_model.safetensors   PeftModel.save_pretrained output
  peft_<case>/reference.safetensors  input_ids [2,12] (int64), logits [2,12,vocab] of the PEFT model,
                                     base_logits (adapter disabled), merged.<name> for every base
                                     weight merge_and_unload changed
  nf4.safetensors   input [96,64] f32; for dq in (plain, nested): <dq>.packed uint8 (bitsandbytes
                    layout), <dq>.absmax (f32, or uint8 codes when nested), <dq>.offset, <dq>.absmax2,
                    <dq>.code2 (the 8-bit dynamic map), <dq>.dequantized f32; nf4_table f32[16]
Cases: A and B of every adapter are set to seeded normal values (PEFT initializes B to zeros, which
would make the adapter a no-op and the check vacuous).
"""
import json
import pathlib
import sys
import zlib

import bitsandbytes.functional as bnbf
import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from make_models import disk_names

root = pathlib.Path(__file__).resolve().parents[2]
out_root = root / "lora" / "testdata"

CASES = {
    # tied embeddings, q/k/v biases: a module list, classic α/r scaling
    "qwen2_list": dict(base="qwen2_bias", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]),
    # untied lm_head (excluded by all-linear), rsLoRA α/√r
    "llama_rslora": dict(base="llama_gqa", r=2, lora_alpha=4, target_modules="all-linear", use_rslora=True),
    # regex target_modules and modules_to_save
    "llama_regex_save": dict(base="llama_gqa", r=3, lora_alpha=6, target_modules=r".*\.layers\.1\.self_attn\.(q|o)_proj",
                             modules_to_save=["lm_head"]),
    # all-linear per family: StarCoder2's biased q/k/v/o and c_fc/c_proj; Mixtral's attention plus its router and
    # stacked experts as target_parameters (gate_up_proj at rank 2r, alpha 2α); SmolLM3's Llama projections
    "starcoder2_all": dict(base="starcoder2_bias", r=4, lora_alpha=8, target_modules="all-linear"),
    "mixtral_all": dict(base="mixtral_moe", r=2, lora_alpha=6, target_modules="all-linear"),
    "smollm3_all": dict(base="smollm3_nope", r=4, lora_alpha=16, target_modules="all-linear", use_rslora=True),
}


def run_case(name, spec):
    torch.manual_seed(0)
    base_dir = root / "testdata" / "models" / spec["base"]
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager")
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    kw = {k: v for k, v in spec.items() if k != "base"}
    cfg = LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, bias="none", **kw)
    pm = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))  # stable across runs (unlike hash())
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_A" in n or "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            elif "modules_to_save" in n:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    pm.eval()
    out = out_root / f"peft_{name}"
    pm.save_pretrained(out)
    (out / "README.md").unlink(missing_ok=True)  # the model card is not part of the format
    # base_model_name_or_path points at the fixture, relative to the repository root
    cfg_path = out / "adapter_config.json"
    c = json.loads(cfg_path.read_text())
    c["base_model_name_or_path"] = f"testdata/models/{spec['base']}"
    if isinstance(c["target_modules"], list):  # PEFT stores a set: fix the order
        c["target_modules"] = sorted(c["target_modules"])
    cfg_path.write_text(json.dumps(c, indent=2, sort_keys=True))
    ids = torch.randint(3, model.config.vocab_size, (2, 12), generator=g)
    ref = {"input_ids": ids}
    with torch.no_grad():
        ref["logits"] = pm(input_ids=ids).logits.float().contiguous()
        with pm.disable_adapter():
            ref["base_logits"] = pm(input_ids=ids).logits.float().contiguous()
        merged = pm.merge_and_unload()
        # Mixtral's experts are fused in memory: compare under the checkpoint's per-expert names.
        before = disk_names(model, base_state)
        for k, v in disk_names(model, merged.state_dict()).items():
            if k in before and not torch.equal(v, before[k]):
                ref["merged." + k] = v.contiguous()
    save_file(ref, out / "reference.safetensors")
    print(name, "merged tensors:", sum(1 for k in ref if k.startswith("merged.")))


def nf4_fixture():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(96, 64, generator=g) * torch.linspace(0.01, 3, 96).unsqueeze(1)  # varied block scales
    x[5, 3] = 0.0
    t = {"input": x, "nf4_table": bnbf.get_4bit_type("nf4", device="cpu").float()}
    for tag, nested in (("plain", False), ("nested", True)):
        q, s = bnbf.quantize_4bit(x, blocksize=64, quant_type="nf4", compress_statistics=nested)
        t[f"{tag}.packed"] = q.flatten().contiguous()
        t[f"{tag}.absmax"] = s.absmax.contiguous()
        if nested:
            t[f"{tag}.offset"] = s.offset.reshape(1).float()
            t[f"{tag}.absmax2"] = s.state2.absmax.float().contiguous()
            t[f"{tag}.code2"] = s.state2.code.float().contiguous()
        t[f"{tag}.dequantized"] = bnbf.dequantize_4bit(q, s).float().contiguous()
    save_file(t, out_root / "nf4.safetensors")


if __name__ == "__main__":
    # peft_golden.py [CASE ...]: only the named adapter cases (no NF4 fixture); all of it without names.
    out_root.mkdir(parents=True, exist_ok=True)
    for n in sys.argv[1:] or CASES:
        run_case(n, CASES[n])
    if len(sys.argv) == 1:
        nf4_fixture()
    import bitsandbytes
    (out_root / "versions.json").write_text(json.dumps({
        "peft": peft.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
        "bitsandbytes": bitsandbytes.__version__}, indent=1))
