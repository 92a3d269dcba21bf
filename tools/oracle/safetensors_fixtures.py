#!/usr/bin/env python3
"""Golden fixtures for handbook/safetensors, and a check of files the Go tests write.

    python tools/oracle/safetensors_fixtures.py generate [OUT]   # default OUT: safetensors/testdata
    python tools/oracle/safetensors_fixtures.py check DIR

generate writes, with torch + safetensors + transformers:
  fixtures.safetensors   safetensors.torch.save_file of small tensors of known values
                         (F32/BF16/F16/F64/I64/I32/I16/U8/I8/BOOL, a 0-d scalar, an empty tensor)
  escapes.safetensors    one tensor whose name, and a metadata value, need JSON escaping
                         (ESCAPE_NAME, ESCAPE_FORMAT), to pin the header's string encoding
  fixtures.json          expected dtype, shape and raw element bits of each tensor, the float32
                         bits torch converts float tensors to, and torch's float32->bfloat16
                         conversion of edge values (ties, subnormals, overflow, inf, NaN)
  tiny-llama/            a tiny LlamaForCausalLM (bf16) saved by transformers' save_pretrained
                         with a small max_shard_size: config.json, model-0000i-of-0000n.safetensors,
                         model.safetensors.index.json
check loads what `SAFETENSORS_ORACLE_DIR=DIR go test ./safetensors/ -run TestOracleOutput`
wrote into DIR with safetensors.torch.load_file and transformers.from_pretrained and asserts
the values against the goldens. It prints one line per check and exits non-zero on a mismatch.
Never needed by `go test`.
"""
import json
import math
import os
import struct
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.join(HERE, "..", "..", "safetensors", "testdata")

DTYPES = {
    torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.uint8: "U8",
    torch.int8: "I8", torch.bool: "BOOL",
}
# Unsigned integer views used to record raw element bits.
BITS_VIEW = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16,
             torch.float64: torch.int64}
MASK = {torch.float32: 0xFFFFFFFF, torch.bfloat16: 0xFFFF, torch.float16: 0xFFFF,
        torch.float64: 0xFFFFFFFFFFFFFFFF}

TINY_MAX_SHARD_SIZE = 5000
# A single metadata key: the Rust library writes __metadata__ in hash order.
ESCAPE_NAME = "q\"b\\s\u00e9<>&\u2028\x7f/\x01"
ESCAPE_FORMAT = "pt\t\r\b\f\x01\x1f\n/"


def f32(bits):
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def f32_bits(t):
    """Unsigned float32 bits of a float tensor converted by torch to float32."""
    return [b & 0xFFFFFFFF for b in t.to(torch.float32).reshape(-1).view(torch.int32).tolist()]


def fixture_tensors():
    inf, nan = float("inf"), float("nan")
    return {
        "f32": torch.tensor([[0.0, -0.0, 1.0], [-2.5, 3.4028234663852886e38, 1e-45],
                             [inf, -inf, nan]], dtype=torch.float32),
        "bf16": torch.tensor([0.0, -0.0, 1.0, -2.5, 3.14159, 1e-40, inf, 65504.0],
                             dtype=torch.float32).to(torch.bfloat16).reshape(2, 4),
        "f16": torch.tensor([[6e-8, 65504.0], [-0.0, 1.0 / 3.0], [-inf, 0.5]], dtype=torch.float16),
        "f64": torch.tensor([1.0 / 3.0, -1e300, 2.5], dtype=torch.float64),
        "i64": torch.tensor([0, -1, 2**63 - 1, -(2**63)], dtype=torch.int64),
        "i32": torch.tensor([[7, -7]], dtype=torch.int32),
        "i16": torch.tensor([-32768, 32767], dtype=torch.int16),
        "u8": torch.tensor([0, 1, 255], dtype=torch.uint8),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "mask": torch.tensor([True, False, True], dtype=torch.bool),
        "scalar": torch.tensor(3.5, dtype=torch.float32),
        "empty": torch.zeros(0, 4, dtype=torch.float32),
        "model.layers.0.self_attn.q_proj.weight": torch.arange(6, dtype=torch.float32).reshape(3, 2) / 4,
    }


def expected_entry(t):
    e = {"dtype": DTYPES[t.dtype], "shape": list(t.shape)}
    flat = t.reshape(-1)
    if t.dtype in BITS_VIEW:
        e["bits"] = [b & MASK[t.dtype] for b in flat.view(BITS_VIEW[t.dtype]).tolist()]
        e["f32_bits"] = f32_bits(t)
    else:
        e["ints"] = [int(v) for v in flat.tolist()]
    return e


def bf16_edges():
    bits = [
        0x00000000, 0x80000000, 0x3F800000, 0x7F800000, 0xFF800000,  # zeros, 1, infinities
        0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF, 0xFFFFFFFF,  # NaNs (quiet, negative, signalling)
        0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F7FFF, 0x7F7F8000,  # max finite (rounds to inf), near max
        0x00000001, 0x80000001, 0x00008000, 0x00018000, 0x007FFFFF, 0x00800000, 0x807FFFFF,  # subnormals
        0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF, 0xBF808000, 0xBF818000,  # ties and near-ties
        0x40490FDB, 0x3EAAAAAB, 0x477FE000, 0xC2F6E979, 0x3DCCCCCD,  # pi, 1/3, 65504, -123.456, 0.1
    ]
    x = torch.tensor(bits, dtype=torch.int64).to(torch.int32).view(torch.float32)
    scalar = [torch.tensor([f32(b)], dtype=torch.float32).to(torch.bfloat16).view(torch.int16).item() & 0xFFFF
              for b in bits]
    # A long vector goes through torch's vectorized conversion kernel.
    reps = 8
    vec = x.repeat(reps).to(torch.bfloat16).view(torch.int16)[: len(bits)].tolist()
    return [{"f32_bits": b, "torch_scalar": s, "torch_vector": v & 0xFFFF}
            for b, s, v in zip(bits, scalar, vec)]


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                         tie_word_embeddings=False, dtype="bfloat16")
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    return model


def state_dict_summary(sd):
    out = {}
    for name, t in sd.items():
        v = t.to(torch.float32).reshape(-1)
        out[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                     "sum": float(v.to(torch.float64).sum().item()), "first_f32_bits": f32_bits(v[:4])}
    return out


def generate(out):
    os.makedirs(out, exist_ok=True)
    tensors = fixture_tensors()
    save_file(tensors, os.path.join(out, "fixtures.safetensors"), metadata={"format": "pt"})
    save_file({ESCAPE_NAME: torch.tensor([1.0])}, os.path.join(out, "escapes.safetensors"),
              metadata={"format": ESCAPE_FORMAT})
    expected = {
        "escapes": {"name": ESCAPE_NAME, "format": ESCAPE_FORMAT},
        "tensors": {k: expected_entry(v) for k, v in tensors.items()},
        "metadata": {"format": "pt"},
        "bf16_edges": bf16_edges(),
        "versions": {"torch": torch.__version__, "safetensors": __import__("safetensors").__version__,
                     "transformers": __import__("transformers").__version__},
    }
    model = tiny_llama()
    llama_dir = os.path.join(out, "tiny-llama")
    model.save_pretrained(llama_dir, max_shard_size=TINY_MAX_SHARD_SIZE)
    with open(os.path.join(llama_dir, "model.safetensors.index.json")) as f:
        weight_map = json.load(f)["weight_map"]
    sd = {k: v for k, v in model.state_dict().items() if k in weight_map}
    expected["tiny_llama"] = {"max_shard_size": TINY_MAX_SHARD_SIZE, "state_dict_order": list(sd),
                              "tensors": state_dict_summary(sd)}
    with open(os.path.join(out, "fixtures.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote goldens into {out}: fixtures.safetensors, escapes.safetensors, fixtures.json, tiny-llama/ "
          f"({sorted(os.listdir(llama_dir))})")


class Checker:
    def __init__(self):
        self.failures = 0

    def ok(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            self.failures += 1


def same_bits(a, b):
    return torch.equal(a.reshape(-1).view(BITS_VIEW.get(a.dtype, a.dtype)),
                       b.reshape(-1).view(BITS_VIEW.get(b.dtype, b.dtype)))


def check(dir_):
    c = Checker()
    with open(os.path.join(TESTDATA, "fixtures.json")) as f:
        expected = json.load(f)

    # 1. The fixture tensors re-written by Go's Save: every value bit-identical.
    golden = fixture_tensors()
    path = os.path.join(dir_, "fixtures.safetensors")
    got = load_file(path)
    c.ok(sorted(got) == sorted(golden), f"{path}: load_file gives the tensor names {sorted(golden)}")
    for name, want in golden.items():
        t = got.get(name)
        c.ok(t is not None and t.dtype == want.dtype and t.shape == want.shape and same_bits(t, want),
             f"{path}: {name} {DTYPES[want.dtype]}{list(want.shape)} bit-identical")
    with safe_open(path, framework="pt") as f:
        c.ok(f.metadata() == {"format": "pt"}, f"{path}: __metadata__ == {{'format': 'pt'}}")
    with open(path, "rb") as f, open(os.path.join(TESTDATA, "fixtures.safetensors"), "rb") as g:
        c.ok(f.read() == g.read(), f"{path}: byte-identical to safetensors.torch.save_file's")

    # 2. Float32 -> BF16 conversion by Go's BFloat16Source against torch's cast.
    path = os.path.join(dir_, "bf16_edges.safetensors")
    t = load_file(path)["edges"]
    edges = [e["f32_bits"] for e in expected["bf16_edges"]]
    x = torch.tensor(edges, dtype=torch.int64).to(torch.int32).view(torch.float32)
    want = x.to(torch.bfloat16)
    nan = torch.isnan(want)
    c.ok(t.dtype == torch.bfloat16 and t.shape == want.shape, f"{path}: edges is BF16{list(want.shape)}")
    c.ok(torch.equal(torch.isnan(t), nan), f"{path}: NaN exactly where torch gives NaN")
    c.ok(torch.equal(t[~nan].view(torch.int16), want[~nan].view(torch.int16)),
         f"{path}: {int((~nan).sum())} non-NaN edge values bit-identical to torch's float->bfloat16")
    c.ok(torch.equal(t.view(torch.int16), want.view(torch.int16)),
         f"{path}: the {int(nan.sum())} NaNs too (torch's CPU cast gives 0xFFFF)")

    # 3. The tiny Llama re-saved by Go's SaveCheckpoint: transformers loads it, same weights.
    from transformers import LlamaForCausalLM
    src = os.path.join(TESTDATA, "tiny-llama")
    dst = os.path.join(dir_, "tiny-llama")
    want_sd = LlamaForCausalLM.from_pretrained(src, dtype=torch.bfloat16).state_dict()
    got_model = LlamaForCausalLM.from_pretrained(dst, dtype=torch.bfloat16)
    got_sd = got_model.state_dict()
    c.ok(sorted(got_sd) == sorted(want_sd), f"{dst}: from_pretrained gives the same {len(want_sd)} parameters")
    c.ok(all(same_bits(got_sd[k], want_sd[k]) for k in want_sd), f"{dst}: every parameter bit-identical")
    for name in sorted(os.listdir(src)):
        if name.endswith(".safetensors") or name.endswith(".index.json"):
            with open(os.path.join(src, name), "rb") as f, open(os.path.join(dst, name), "rb") as g:
                c.ok(f.read() == g.read(), f"{dst}/{name}: byte-identical to transformers' save_pretrained")
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        a = LlamaForCausalLM.from_pretrained(src, dtype=torch.bfloat16)(ids).logits
        b = got_model(ids).logits
    c.ok(torch.equal(a, b), f"{dst}: forward pass logits identical to the original's")

    # 4. A PEFT-style adapter written by SaveCheckpoint with BaseName adapter_model.safetensors.
    path = os.path.join(dir_, "adapter", "adapter_model.safetensors")
    t = load_file(path)
    c.ok(set(t) == {"base_model.model.lm_head.lora_A.weight", "base_model.model.lm_head.lora_B.weight"}
         and all(v.dtype == torch.float32 for v in t.values()), f"{path}: loads, F32 LoRA tensors")

    print(f"{c.failures} failure(s)")
    return 1 if c.failures else 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "check" and len(argv) == 3:
        return check(argv[2])
    if len(argv) >= 2 and argv[1] == "generate" and len(argv) <= 3:
        generate(argv[2] if len(argv) == 3 else TESTDATA)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
