#!/usr/bin/env python3
"""Build the tiny seeded random decoder fixtures under testdata/models/ and record
what Hugging Face transformers computes for them (the golden references the Go
tests in package `model` compare against).

Regenerating is deliberate: it rewrites committed goldens. Run via
    tools/oracle/setup.sh && "$VENV/bin/python" tools/oracle/make_models.py
Deterministic for a fixed torch/transformers version (see requirements.txt).

Per model directory testdata/models/<name>/:
  config.json, model.safetensors (+ generation_config.json)  -- save_pretrained output
  reference.json                                               -- see SCHEMA below / README.md
  grads.safetensors (llama_gqa, starcoder2_bias, smollm3_nope: d loss / d param of input_ids; mixtral_moe: of
                    the aux-term loss on its right-padded batch)  -- HF checkpoint names

reference.json schema (all floats float32 values written with 9 significant digits):
  schema_version: 1
  input_ids:      [B=2][T=24] int
  logits:         [2][24][vocab] float      model(input_ids).logits
  loss:           float                     model(input_ids, labels=input_ids).loss (mean next-token CE)
  padded:         {input_ids [2][24], attention_mask [2][24], position_ids [2][24],
                   logits [2][24] of ([vocab] | null)}   left padding with pad id 0;
                   position_ids = cumsum(mask)-1, 0 at pads (as generate does);
                   logits rows at pad positions are null (undefined: compare only mask==1).
                   Row b's real tokens are input_ids[b][:len_b], so their logits also equal
                   logits[b][:len_b] (checked here within tolerance).
  packed:         {input_ids [1][24], position_ids [1][24], segment_ids [1][24], lengths [..],
                   logits [1][24][vocab]}   two samples packed in one row, position ids restart,
                   no attention_mask (transformers infers the packing from position_ids); each
                   sample's logits equal the sample run alone (checked here).
  greedy:         {prompt_ids [8], new_ids [32], min_margin}   generate(do_sample=False), no EOS stop
  greedy_batch:   {prompt_ids [2][8], attention_mask [2][8], new_ids [2][32], min_margin}  left padded
                   min_margin = smallest (top1 - top2) logit gap over all greedy steps (a measure of
                   how robust the expected tokens are to float reordering)
  config_summary: facts about the family (see family_summary())
  grad_loss:      (llama_gqa, starcoder2_bias, smollm3_nope) the loss whose gradients are in grads.safetensors
"""

import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    AutoModelForCausalLM,
    GemmaConfig,
    LlamaConfig,
    MistralConfig,
    MixtralConfig,
    Qwen2Config,
    Qwen3Config,
    SmolLM3Config,
    Starcoder2Config,
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "testdata", "models")

B, T = 2, 24
PROMPT_LEN = 8
NEW_TOKENS = 32
PAD = 0
PADDED_LENGTHS = [21, 15]  # real tokens per row in the left-padded batch
PACKED_LENGTHS = [10, 14]  # two samples packed into one row of T
BATCH_PROMPT_LENGTHS = [8, 5]
MIN_MARGIN = 2e-3  # reseed the prompts until every greedy step has at least this top1-top2 gap
MIN_DISTINCT = 4  # ... and every generated row has at least this many distinct tokens (no 1-token loops)
WEIGHT_STD = 0.1
RESIDUAL_STD = 0.3  # o_proj / down_proj: layers must move the residual stream away from the token's own
                    # embedding, or a tied head just predicts the last token forever

COMMON = dict(
    num_hidden_layers=2,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    initializer_range=0.02,
    attention_dropout=0.0,
)

# name -> (config class, kwargs, config_style)
#   config_style "hub_v4": config.json rewritten to the layout of checkpoints on the Hub
#     (top-level rope_theta + rope_scaling, torch_dtype), which transformers 5 still reads.
#   config_style "transformers_v5": config.json exactly as this transformers version writes it
#     (rope_parameters {rope_type, rope_theta, ...}, dtype).
MODELS = {
    "llama_gqa": (
        LlamaConfig,
        dict(
            vocab_size=128,
            hidden_size=64,
            intermediate_size=96,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=False,
            attention_bias=False,
            hidden_act="silu",
            rope_theta=500000.0,
            # head_dim 16 -> wavelengths 6.3, 32.4, 167, 863, ...: with original_max_position_embeddings 64
            # (low_freq_wavelen 64, high_freq_wavelen 16) all three llama3 branches are exercised:
            # kept (6.3 < 16), smoothed (16 <= 32.4 <= 64), divided by factor (> 64).
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
            bos_token_id=1,
            eos_token_id=2,
        ),
        "hub_v4",
    ),
    "llama_tied": (
        LlamaConfig,
        dict(
            vocab_size=256,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=4,
            num_key_value_heads=4,
            head_dim=16,  # != hidden/heads = 8: q_proj is 32 -> 64, o_proj 64 -> 32
            tie_word_embeddings=True,
            attention_bias=False,
            hidden_act="silu",
            rope_theta=10000.0,
            rope_scaling={"rope_type": "linear", "factor": 2.0},
            bos_token_id=1,
            eos_token_id=2,
        ),
        "transformers_v5",
    ),
    "mistral_sw": (
        MistralConfig,
        dict(
            vocab_size=128,
            hidden_size=64,
            intermediate_size=96,
            num_attention_heads=4,
            num_key_value_heads=2,
            sliding_window=8,
            tie_word_embeddings=False,
            hidden_act="silu",
            rope_theta=10000.0,
            bos_token_id=1,
            eos_token_id=2,
        ),
        "hub_v4",
    ),
    "qwen2_bias": (
        Qwen2Config,
        dict(
            vocab_size=128,
            hidden_size=64,
            intermediate_size=96,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            hidden_act="silu",
            rope_theta=1000000.0,
            use_sliding_window=False,
            max_window_layers=1,
            bos_token_id=1,
            eos_token_id=2,
        ),
        "hub_v4",
    ),
    "qwen3_qknorm": (
        Qwen3Config,
        dict(
            vocab_size=128,
            hidden_size=64,
            intermediate_size=96,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,  # != hidden/heads = 16
            tie_word_embeddings=False,
            attention_bias=False,
            hidden_act="silu",
            rope_theta=1000000.0,
            use_sliding_window=False,
            max_window_layers=1,
            bos_token_id=1,
            eos_token_id=2,
        ),
        "transformers_v5",
    ),
    "gemma": (
        GemmaConfig,
        dict(
            vocab_size=128,
            hidden_size=48,  # sqrt(48) is irrational: the embedding normalizer is not exact
            intermediate_size=96,
            num_attention_heads=4,
            num_key_value_heads=1,  # MQA, as gemma-2b
            head_dim=16,  # != hidden/heads = 12
            tie_word_embeddings=True,
            hidden_act="gelu_pytorch_tanh",
            rope_theta=10000.0,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=1,
        ),
        "hub_v4",
    ),
    "starcoder2_bias": (
        Starcoder2Config,
        dict(
            vocab_size=128,
            hidden_size=64,
            intermediate_size=128,
            num_attention_heads=4,
            num_key_value_heads=2,
            use_bias=True,  # biases on q/k/v/o and c_fc/c_proj
            norm_epsilon=1e-5,
            sliding_window=8,
            hidden_act="gelu_pytorch_tanh",
            rope_theta=100000.0,
            bos_token_id=1,
            eos_token_id=2,
        ),
        "hub_v4",
    ),
    "mixtral_moe": (
        MixtralConfig,
        dict(
            vocab_size=128,
            hidden_size=32,
            intermediate_size=48,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_local_experts=4,
            num_experts_per_tok=2,
            router_aux_loss_coef=0.02,
            sliding_window=16,
            tie_word_embeddings=False,
            hidden_act="silu",
            rope_theta=1000000.0,
            bos_token_id=1,
            eos_token_id=2,
        ),
        "hub_v4",
    ),
    "smollm3_nope": (
        SmolLM3Config,
        dict(
            vocab_size=128,
            hidden_size=64,
            intermediate_size=96,
            num_attention_heads=4,
            num_key_value_heads=2,
            no_rope_layer_interval=2,  # layer 1 of 2 is NoPE
            use_sliding_window=True,
            sliding_window=8,  # derived layer_types: the NoPE layer slides
            tie_word_embeddings=True,
            hidden_act="silu",
            rope_theta=5000000.0,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
        ),
        "hub_v4",
    ),
}

# Hub-style config fix-ups applied after save_pretrained (see to_hub_v4).
HUB_EXTRA = {
    # Gemma checkpoints on the Hub carry hidden_act "gelu" *and* hidden_activation "gelu_pytorch_tanh";
    # every transformers version runs the tanh approximation for them.
    "gemma": {"hidden_act": "gelu", "hidden_activation": "gelu_pytorch_tanh"},
    # Qwen2 checkpoints on the Hub carry a sliding_window value with use_sliding_window false; the window
    # must then be ignored. A small value makes a decoder that honours it anyway fail the logits test.
    "qwen2_bias": {"sliding_window": 4, "use_sliding_window": False, "max_window_layers": 1},
    # StarCoder2 checkpoints carry the keys of BigCode's training code (transformers ignores them) and
    # nonzero dropouts (inactive in eval).
    "starcoder2_bias": {"norm_type": "layer_norm", "mlp_type": "default", "layer_norm_epsilon": 1e-5,
                        "attention_dropout": 0.1, "residual_dropout": 0.1, "embedding_dropout": 0.1},
}

# Keys dropped from the saved config so that transformers derives them on load (the Go side must too).
HUB_DROP = {
    "smollm3_nope": ["no_rope_layers"],
}


def f32(x):
    """float32 value -> Python float with 9 significant digits (round-trips float32 exactly)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().item()
    return float(f"{float(x):.9g}")


def tolist32(t):
    a = t.detach().to(torch.float32).cpu().numpy()
    return np.vectorize(f32, otypes=[object])(a).tolist() if a.size else a.tolist()


def randomize(model, family, gen):
    """Overwrite every parameter (sorted by name, deterministic) so no formula passes by accident."""
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            n = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if "norm" in name and name.endswith(".bias"):
                p.copy_(0.1 * n)  # LayerNorm's bias (StarCoder2)
            elif "norm" in name:
                # Gemma's RMSNorm computes x*(1+w): its weights are centred on 0; everyone else's on 1.
                p.copy_(0.1 * n if family == "gemma" else 1.0 + 0.1 * n)
            elif name.endswith(("o_proj.weight", "down_proj.weight", "c_proj.weight", "experts.down_proj")):
                # Gemma multiplies embeddings by sqrt(hidden) before the residual stream; scale the
                # residual writers alike so the layers still matter relative to the embedding.
                scale = math.sqrt(model.config.hidden_size) if family == "gemma" else 1.0
                p.copy_(RESIDUAL_STD * scale * n)
            else:
                p.copy_(WEIGHT_STD * n)  # other linear weights, embeddings, biases


def to_hub_v4(cfg, extra):
    """Rewrite a transformers-5 config dict into the layout checkpoints on the Hub use."""
    cfg = dict(cfg)
    rp = cfg.pop("rope_parameters", None) or {}
    rp = dict(rp)
    cfg["rope_theta"] = rp.pop("rope_theta")
    if rp.get("rope_type", "default") != "default":
        cfg["rope_scaling"] = rp
    else:
        cfg["rope_scaling"] = None
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    cfg.pop("layer_types", None)  # Qwen, SmolLM3: derived from use_sliding_window/max_window_layers/no_rope_layers
    cfg.update(extra)
    return dict(sorted(cfg.items()))


def load(d):
    m, info = AutoModelForCausalLM.from_pretrained(
        d, attn_implementation="eager", dtype=torch.float32, output_loading_info=True
    )
    bad = {k: v for k, v in info.items() if v and k != "error_msgs"} | (
        {"error_msgs": info["error_msgs"]} if info.get("error_msgs") else {}
    )
    if bad:
        raise SystemExit(f"{d}: loading info not clean: {bad}")
    m.eval()
    return m


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max())


def greedy_reference(model, ids, mask):
    """Greedy decoding by full recompute (no cache): the tokens and the smallest top1-top2 gap."""
    ids = ids.clone()
    mask = mask.clone()
    new, margin = [], math.inf
    with torch.no_grad():
        for _ in range(NEW_TOKENS):
            pos = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits[:, -1]
            top = logits.topk(2, dim=-1).values
            margin = min(margin, float((top[:, 0] - top[:, 1]).min()))
            nxt = logits.argmax(-1, keepdim=True)
            new.append(nxt)
            ids = torch.cat([ids, nxt], 1)
            mask = torch.cat([mask, torch.ones_like(nxt)], 1)
    return torch.cat(new, 1), margin


def hf_generate(model, ids, mask):
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            eos_token_id=None,
            pad_token_id=PAD,
        )
    return out[:, ids.shape[1]:]


def left_pad(rows, width):
    ids = torch.full((len(rows), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.as_tensor(r)
        mask[i, width - len(r):] = 1
    return ids, mask


def head_dim(c):
    return getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads


def family_summary(name, model, style):
    c = model.config
    rp = dict(c.rope_parameters)
    mt = c.model_type
    mlp = {"starcoder2": "c_proj(act(c_fc(x)))", "mixtral": "sum_topk w_e * w2_e(act(w1_e x) * w3_e x)"}
    norm = {"gemma": "x*rsqrt(mean(x^2)+eps)*(1+w) in f32", "starcoder2": "LayerNorm: (x-mean)/sqrt(var+eps)*w+b"}
    bias = mt == "starcoder2" and bool(c.use_bias)
    s = {
        "model_type": mt,
        "config_style": style,
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads,
        "head_dim": head_dim(c),
        "rms_norm_eps": getattr(c, "rms_norm_eps", None),
        "norm_epsilon": getattr(c, "norm_epsilon", None),
        "rope_theta": rp.get("rope_theta"),
        "rope_type": rp.get("rope_type", "default"),
        "rope_parameters": rp,
        "inv_freq": tolist32(model.model.rotary_emb.inv_freq),
        "attention_scaling": float(model.model.rotary_emb.attention_scaling),
        "tie_word_embeddings": bool(c.tie_word_embeddings),
        "activation": c.hidden_act,
        "mlp": mlp.get(mt, "down(act(gate(x)) * up(x))"),
        "qkv_bias": mt == "qwen2" or bias or bool(getattr(c, "attention_bias", False)),
        "o_bias": bias or bool(getattr(c, "attention_bias", False)),
        "qk_norm": mt == "qwen3",
        "sliding_window_effective": getattr(c, "sliding_window", None),
        "layer_types": getattr(c, "layer_types", None),
        "no_rope_layers": getattr(c, "no_rope_layers", None),
        "num_local_experts": getattr(c, "num_local_experts", None),
        "num_experts_per_tok": getattr(c, "num_experts_per_tok", None),
        "norm": norm.get(mt, "w*(x*rsqrt(mean(x^2)+eps))"),
        "embed_scale": f32(torch.tensor(c.hidden_size**0.5, dtype=torch.float32)) if mt == "gemma" else 1.0,
        "attention_scale": head_dim(c) ** -0.5,
        "pad_token_id": c.pad_token_id,
        "bos_token_id": c.bos_token_id,
        "eos_token_id": c.eos_token_id,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    if mt in ("mistral", "starcoder2", "mixtral"):
        s["sliding_window_rule"] = "query index i sees key index j iff i-W < j <= i (W tokens incl. itself)"
    if mt == "smollm3":
        # SmolLM3 windows only the layers layer_types marks sliding, and only with use_sliding_window.
        s["sliding_window_effective"] = c.sliding_window if c.use_sliding_window and c.layer_types[0] == "sliding_attention" else None
        s["sliding_window_per_layer"] = [c.sliding_window if c.use_sliding_window and t == "sliding_attention" else None
                                         for t in c.layer_types]
    return s


def disk_names(model, tensors):
    """transformers 5 keeps Mixtral's experts fused in memory (mlp.experts.gate_up_proj [E,2I,H], down_proj
    [E,H,I], router mlp.gate); save_pretrained writes the per-expert checkpoint names. Map tensors keyed by
    in-memory parameter names onto the checkpoint's."""
    out = {}
    inter = model.config.intermediate_size
    for k, v in tensors.items():
        if ".mlp.experts.gate_up_proj" in k:
            base = k.replace(".mlp.experts.gate_up_proj", ".block_sparse_moe.experts.")
            for e in range(v.shape[0]):
                out[f"{base}{e}.w1.weight"] = v[e, :inter].contiguous()
                out[f"{base}{e}.w3.weight"] = v[e, inter:].contiguous()
        elif ".mlp.experts.down_proj" in k:
            base = k.replace(".mlp.experts.down_proj", ".block_sparse_moe.experts.")
            for e in range(v.shape[0]):
                out[f"{base}{e}.w2.weight"] = v[e].contiguous()
        elif ".mlp.gate.weight" in k and model.config.model_type == "mixtral":
            out[k.replace(".mlp.gate.", ".block_sparse_moe.gate.")] = v.contiguous()
        else:
            out[k] = v.contiguous()
    return out


def router_gap(router_logits, k):
    """Smallest gap between the k-th and (k+1)-th router probability over all tokens and layers: how far
    every routing decision is from a tie."""
    gap = math.inf
    for logits in router_logits:
        p = torch.softmax(logits.float(), -1).sort(-1, descending=True).values
        gap = min(gap, float((p[:, k - 1] - p[:, k]).min().detach()))
    return gap


def moe_reference(model, d, input_ids):
    """Mixtral's training loss with the load-balancing term (output_router_logits=True), on input_ids and on a
    right-padded batch as TRL's collators build it (labels -100 and attention mask 0 on the padding, which the
    aux term excludes), and the gradients of the padded one in grads.safetensors (checkpoint names)."""
    coef = model.config.router_aux_loss_coef
    k = model.config.num_experts_per_tok
    with torch.no_grad():
        out = model(input_ids, labels=input_ids, output_router_logits=True)
    gap = router_gap(out.router_logits, k)
    tid = torch.full_like(input_ids, PAD)
    tmask = torch.zeros_like(input_ids)
    for b, n in enumerate(PADDED_LENGTHS):
        tid[b, :n] = input_ids[b, :n]
        tmask[b, :n] = 1
    tlabels = tid.masked_fill(tmask == 0, -100)
    model.zero_grad(set_to_none=True)
    tout = model(input_ids=tid, attention_mask=tmask, labels=tlabels, output_router_logits=True)
    tout.loss.backward()
    gap = min(gap, router_gap(tout.router_logits, k))
    assert gap > 1e-4, ("router near-tie", gap)
    grads = disk_names(model, {n: p.grad.detach() for n, p in model.named_parameters()})
    save_file(grads, os.path.join(d, "grads.safetensors"), metadata={"format": "pt", "loss": repr(tout.loss.item())})
    model.zero_grad(set_to_none=True)
    return {
        "router_aux_loss_coef": coef,
        "aux_loss": f32(out.aux_loss),
        "loss_with_aux": f32(out.loss),
        "train_batch": {"input_ids": tid.tolist(), "attention_mask": tmask.tolist(), "labels": tlabels.tolist()},
        "train_aux_loss": f32(tout.aux_loss),
        "train_loss_with_aux": f32(tout.loss),
        "min_router_gap": f32(gap),
    }


def build(name, idx):
    cls, kwargs, style = MODELS[name]
    d = os.path.join(OUT, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)

    seed = 1000 + idx
    torch.manual_seed(seed)
    common = dict(COMMON)
    if cls is Starcoder2Config:
        common.pop("rms_norm_eps")  # StarCoder2's LayerNorm reads norm_epsilon
    cfg = cls(**common, **kwargs)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    randomize(model, name, gen)
    model.eval()
    vocab = cfg.vocab_size

    input_ids = torch.randint(1, vocab, (B, T), generator=gen)
    with torch.no_grad():
        mem_logits = model(input_ids).logits

    model.save_pretrained(d, safe_serialization=True)
    if style == "hub_v4":
        p = os.path.join(d, "config.json")
        with open(p) as f:
            c = json.load(f)
        with open(p, "w") as f:
            c = to_hub_v4(c, HUB_EXTRA.get(name, {}))
            for k in HUB_DROP.get(name, []):
                c.pop(k)
            json.dump(c, f, indent=2)
            f.write("\n")

    # Everything below comes from the model as loaded back from the fixture directory.
    model = load(d)
    ref = {"schema_version": 1, "model": name}
    with torch.no_grad():
        out = model(input_ids, labels=input_ids)
    logits = out.logits
    if not torch.equal(logits, mem_logits):
        raise SystemExit(f"{name}: reloaded model differs from the one saved ({rel_err(logits, mem_logits)})")
    ref["input_ids"] = input_ids.tolist()
    ref["logits"] = tolist32(logits)
    ref["loss"] = f32(out.loss)

    # Left-padded batch: row b holds input_ids[b][:len_b].
    pid, pmask = left_pad([input_ids[b, :n].tolist() for b, n in enumerate(PADDED_LENGTHS)], T)
    ppos = (pmask.cumsum(-1) - 1).masked_fill(pmask == 0, 0)
    with torch.no_grad():
        plog = model(input_ids=pid, attention_mask=pmask, position_ids=ppos).logits
    for b, n in enumerate(PADDED_LENGTHS):
        e = rel_err(plog[b, T - n:], logits[b, :n])
        assert e < 1e-5, (name, "padded", b, e)
    prows = tolist32(plog)
    for b in range(B):
        for t in range(T):
            if pmask[b, t] == 0:
                prows[b][t] = None
    ref["padded"] = {
        "input_ids": pid.tolist(),
        "attention_mask": pmask.tolist(),
        "position_ids": ppos.tolist(),
        "logits": prows,
    }

    # Packed row: input_ids[0][:10] ++ input_ids[1][:14], positions restart, no attention mask.
    n0, n1 = PACKED_LENGTHS
    kid = torch.cat([input_ids[0, :n0], input_ids[1, :n1]])[None]
    kpos = torch.cat([torch.arange(n0), torch.arange(n1)])[None]
    kseg = torch.cat([torch.zeros(n0, dtype=torch.long), torch.ones(n1, dtype=torch.long)])[None]
    with torch.no_grad():
        klog = model(input_ids=kid, position_ids=kpos, use_cache=False).logits
    e0 = rel_err(klog[0, :n0], logits[0, :n0])
    e1 = rel_err(klog[0, n0:], logits[1, :n1])
    assert e0 < 1e-5 and e1 < 1e-5, (name, "packed", e0, e1)
    ref["packed"] = {
        "input_ids": kid.tolist(),
        "position_ids": kpos.tolist(),
        "segment_ids": kseg.tolist(),
        "lengths": PACKED_LENGTHS,
        "logits": tolist32(klog),
    }

    # Greedy generations; reseed the prompts until the argmax is never a near-tie.
    for attempt in range(50):
        pg = torch.Generator().manual_seed(seed * 100 + attempt)
        prompt = torch.randint(1, vocab, (1, PROMPT_LEN), generator=pg)
        bprompts = [torch.randint(1, vocab, (n,), generator=pg).tolist() for n in BATCH_PROMPT_LENGTHS]
        bid, bmask = left_pad(bprompts, PROMPT_LEN)
        g_new, g_margin = greedy_reference(model, prompt, torch.ones_like(prompt))
        b_new, b_margin = greedy_reference(model, bid, bmask)
        distinct = min(len(set(r)) for r in g_new.tolist() + b_new.tolist())
        if min(g_margin, b_margin) >= MIN_MARGIN and distinct >= MIN_DISTINCT:
            break
    else:
        raise SystemExit(f"{name}: no prompt seed with greedy margin >= {MIN_MARGIN} and {MIN_DISTINCT} distinct tokens")
    hg = hf_generate(model, prompt, torch.ones_like(prompt))
    hb = hf_generate(model, bid, bmask)
    assert hg.shape == (1, NEW_TOKENS) and hb.shape == (2, NEW_TOKENS), (hg.shape, hb.shape)
    assert torch.equal(hg, g_new), (name, "generate vs full-recompute greedy", hg, g_new)
    assert torch.equal(hb, b_new), (name, "batched generate vs full-recompute greedy", hb, b_new)
    ref["greedy"] = {"prompt_ids": prompt[0].tolist(), "new_ids": hg[0].tolist(), "min_margin": f32(g_margin)}
    ref["greedy_batch"] = {
        "prompt_ids": bid.tolist(),
        "attention_mask": bmask.tolist(),
        "new_ids": hb.tolist(),
        "min_margin": f32(b_margin),
    }
    ref["config_summary"] = family_summary(name, model, style)
    if model.config.model_type == "mixtral":
        ref["moe"] = moe_reference(model, d, input_ids)

    if name in ("llama_gqa", "starcoder2_bias", "smollm3_nope"):
        model.zero_grad(set_to_none=True)
        loss = model(input_ids, labels=input_ids).loss
        loss.backward()
        grads = {n: p.grad.detach().contiguous().clone() for n, p in model.named_parameters()}
        save_file(grads, os.path.join(d, "grads.safetensors"), metadata={"format": "pt", "loss": repr(loss.item())})
        ref["grad_loss"] = f32(loss)

    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")

    for x in os.listdir(d):
        os.chmod(os.path.join(d, x), 0o644)  # safetensors writes 0600
    size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    assert size < 1 << 20, (name, size)
    info = {
        "model": name,
        "bytes": size,
        "max_abs_logit": f32(logits.abs().max()),
        "logit_std": f32(logits.std()),
        "loss": ref["loss"],
        "greedy_distinct": distinct,
        "min_margin": f32(min(g_margin, b_margin)),
        "prompt_attempts": attempt + 1,
    }
    info.update(sensitivity(name, model, input_ids, logits))
    print(json.dumps(info), flush=True)


def sensitivity(name, model, input_ids, logits):
    """How far a plausible wrong formula lands, relative to the 1e-4*max|logit| test tolerance."""
    out = {}
    with torch.no_grad():
        if name == "gemma":
            fn = model.model.layers[0].mlp.act_fn
            for layer in model.model.layers:
                layer.mlp.act_fn = torch.nn.GELU()  # exact erf GELU instead of tanh approximation
            out["exact_gelu_rel_err"] = rel_err(model(input_ids).logits, logits)
            for layer in model.model.layers:
                layer.mlp.act_fn = fn
        if name in ("mistral_sw", "starcoder2_bias", "mixtral_moe"):
            sw = model.config.sliding_window
            model.config.sliding_window = None
            out["no_window_rel_err"] = rel_err(model(input_ids).logits, logits)
            model.config.sliding_window = sw
        if name == "smollm3_nope":
            flags = [layer.self_attn.use_rope for layer in model.model.layers]
            for layer in model.model.layers:
                layer.self_attn.use_rope = 1
            out["rope_everywhere_rel_err"] = rel_err(model(input_ids).logits, logits)
            for layer, f in zip(model.model.layers, flags):
                layer.self_attn.use_rope = f
    return out


def main():
    names = sys.argv[1:] or list(MODELS)
    transformers.logging.disable_progress_bar()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # fixed reduction order
    for name in names:
        build(name, list(MODELS).index(name))


if __name__ == "__main__":
    main()
