#!/usr/bin/env python3
"""Model repositories for the all-recipes test (seed_recipes_test.go): for each kind of model the seed's
recipes load, a tiny config.json of that family (written by transformers), a tokenizer of the same kind and
the chat template the real repository ships. The Go test draws random weights for each config and serves the
result, with generated datasets, from a fake Hugging Face Hub under the recipes' own model ids.

Tokenizers keep the real ones' pipelines (normalizers, pre-tokenizers, decoders, post-processors, special
tokens) and cut the vocabulary to its first ids (with the merges that stay inside it), so a tiny model can
have the tokenizer's vocabulary:
  llama_sp  Mistral-7B's (SentencePiece BPE with byte fallback, <s> prepended): Mistral, Mixtral, zephyr
  gemma     the same pieces with Gemma's special tokens (<pad> <eos> <bos> <unk>, <start_of_turn>), no prefix ▁
  gpt2      byte-level BPE with GPT-2's regex (StarCoder2's and SmolLM's kind), from Qwen3's byte-level merges
  llama3    byte-level BPE with the Llama-3/Qwen split regex (SmolLM3's kind), from Qwen3's
The source tokenizers are the shared fixtures (Mistral-7B-v0.1 and Qwen3 tokenizer.json, Apache-2.0):
    "$VENV/bin/python" tools/oracle/seed_hub.py SHARED_TOKENIZERS_DIR
Writes testdata/seed_hub/<kind>/ (regenerate only on purpose), each with check.json: a text and, when the
repository has a chat template, a rendered conversation, with the ids transformers' tokenizer gives them.
"""
import copy
import json
import pathlib
import sys

import transformers
import yaml
from transformers import (
    AutoTokenizer,
    GemmaConfig,
    GenerationConfig,
    LlamaConfig,
    MistralConfig,
    MixtralConfig,
    SmolLM3Config,
    Starcoder2Config,
)

root = pathlib.Path(__file__).resolve().parents[2]
out_root = root / "testdata" / "seed_hub"
KEEP = 512  # model vocabulary ids kept from the source tokenizers


def recipe_template(path):
    return yaml.safe_load((root / "recipes" / path).read_text())["chat_template"]


ZEPHYR = recipe_template("zephyr-7b-beta/sft/config_full.yaml")
GEMMA_CHATML = recipe_template("zephyr-7b-gemma/sft/config_full.yaml")
STARCHAT2 = recipe_template("starchat2-15b/sft/config_v0.1.yaml")
SMOLLM2 = recipe_template("smollm2/sft/config.yaml")
SMOLLM3 = recipe_template("smollm3/sft/sft.yaml")
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
          "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def added(i, content):
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def cut(tok, keep, drop=()):
    """The first `keep` vocabulary ids of tok (minus the tokens in drop), renumbered from 0 in order, and the
    merges whose parts and result all stay."""
    m = tok["model"]
    pieces = [t for t, i in sorted(m["vocab"].items(), key=lambda kv: kv[1]) if i < keep and t not in drop]
    kept = set(pieces)
    merges = []
    for mg in m["merges"]:
        a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
        if a in kept and b in kept and a + b in kept:
            merges.append(mg)
    return pieces, merges


def build(base, specials_front, pieces, merges, specials_back=()):
    """A tokenizer.json with specials_front at ids 0.., then pieces, then specials_back (added tokens)."""
    tok = copy.deepcopy(base)
    vocab = {}
    for t in list(specials_front) + pieces:
        vocab.setdefault(t, len(vocab))
    tok["model"]["vocab"] = vocab
    tok["model"]["merges"] = merges
    pp = tok.get("post_processor") or {}
    for name, st in pp.get("special_tokens", {}).items():  # TemplateProcessing: the BOS id in this vocabulary
        st["ids"] = [vocab[name]]
    tok["added_tokens"] = [added(vocab[t], t) for t in specials_front]
    for t in specials_back:
        tok["added_tokens"].append(added(len(vocab) + len(tok["added_tokens"]) - len(specials_front), t))
    return tok


def bos_template(bos):
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [None], "tokens": [bos]}}}


def tokenizers(shared):
    mistral = json.loads((shared / "mistral" / "tokenizer.json").read_text())
    qwen = json.loads((shared / "qwen3" / "tokenizer.json").read_text())
    sp_pieces, sp_merges = cut(mistral, KEEP, drop=("<unk>", "<s>", "</s>"))
    bl_pieces, bl_merges = cut(qwen, KEEP)
    kinds = {}

    def llama_sp(extra=()):
        return build(mistral, ["<unk>", "<s>", "</s>"], sp_pieces, sp_merges, extra)

    kinds["llama_sp"] = llama_sp
    gemma_base = copy.deepcopy(mistral)
    gemma_base["normalizer"] = {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}
    gemma_base["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}]}
    gemma_base["post_processor"] = bos_template("<bos>")

    def gemma(extra=()):
        return build(gemma_base, ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"], sp_pieces,
                     sp_merges, extra)

    kinds["gemma"] = gemma
    gpt2_base = copy.deepcopy(qwen)
    gpt2_base["normalizer"] = None
    gpt2_base["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    gpt2_base["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
    gpt2_base["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}

    def gpt2(front, extra=()):
        return build(gpt2_base, front, bl_pieces, bl_merges, extra)

    kinds["gpt2"] = gpt2
    llama3_base = copy.deepcopy(qwen)
    llama3_base["normalizer"] = None

    def llama3(front, extra=()):
        return build(llama3_base, front, bl_pieces, bl_merges, extra)

    kinds["llama3"] = llama3
    return kinds


STARCODER_SPECIALS = ["<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<repo_name>",
                      "<file_sep>", "<issue_start>", "<issue_comment>", "<issue_closed>", "<jupyter_start>",
                      "<jupyter_text>", "<jupyter_code>", "<jupyter_output>", "<jupyter_script>", "<empty_output>"]
SMOLLM_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<reponame>", "<file_sep>", "<filename>",
                   "<gh_stars>", "<issue_start>", "<issue_comment>", "<issue_closed>", "<jupyter_start>",
                   "<jupyter_text>", "<jupyter_code>", "<jupyter_output>", "<jupyter_script>", "<empty_output>"]
SMOLLM3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
                    "<tool_call>", "</tool_call>", "<|finetune_right_pad_id|>", "<|eot_id|>"]

COMMON = dict(num_hidden_layers=2, max_position_embeddings=4096, initializer_range=0.02)


def repos(k):
    """kind name -> (tokenizer.json, tokenizer_config keys, config class, config kwargs)."""
    sp = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2)
    return {
        # Mistral-7B-v0.1 and Mixtral-8x22B-v0.1: no chat template (the SFT/ORPO recipes set one).
        "mistral_base": (k["llama_sp"](), dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True),
                         MistralConfig, dict(sp, sliding_window=4096, rope_theta=10000.0)),
        # zephyr-7b-sft-full/-qlora, mistral-7b-sft-constitutional-ai: the handbook's zephyr template.
        "mistral_zephyr": (k["llama_sp"](), dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True,
                                                 pad_token="</s>", chat_template=ZEPHYR),
                           MistralConfig, dict(sp, sliding_window=4096, rope_theta=10000.0)),
        # teknium/OpenHermes-2.5-Mistral-7B: ChatML tokens added at the end of the vocabulary.
        "mistral_chatml": (k["llama_sp"](["<|im_end|>", "<|im_start|>"]),
                           dict(bos_token="<s>", eos_token="<|im_end|>", unk_token="<unk>", add_bos_token=True, chat_template=CHATML),
                           MistralConfig, dict(sp, sliding_window=4096, rope_theta=10000.0)),
        "mixtral_base": (k["llama_sp"](), dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True),
                         MixtralConfig, dict(sp, intermediate_size=32, num_local_experts=8, num_experts_per_tok=2,
                                             router_aux_loss_coef=0.001)),
        # google/gemma-7b and HuggingFaceH4/zephyr-7b-gemma-sft-v0.1 (ChatML tokens added).
        "gemma_base": (k["gemma"](), dict(bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
                                          add_bos_token=True),
                       GemmaConfig, dict(sp, num_key_value_heads=1, head_dim=16)),
        "gemma_chatml": (k["gemma"](["<|im_start|>", "<|im_end|>"]),
                         dict(bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>", add_bos_token=True,
                              chat_template=GEMMA_CHATML),
                         GemmaConfig, dict(sp, num_key_value_heads=1, head_dim=16)),
        # bigcode/starcoder2-15b (untied head) and HuggingFaceH4/starchat2-15b-sft-v0.1 (ChatML added).
        "starcoder2_base": (k["gpt2"](STARCODER_SPECIALS), dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                                                unk_token="<|endoftext|>"),
                            Starcoder2Config, dict(sp, sliding_window=4096, tie_word_embeddings=False, rope_theta=100000.0)),
        "starcoder2_chatml": (k["gpt2"](STARCODER_SPECIALS, ["<|im_start|>", "<|im_end|>"]),
                              dict(bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="<|endoftext|>", chat_template=STARCHAT2),
                              Starcoder2Config, dict(sp, sliding_window=4096, tie_word_embeddings=False, rope_theta=100000.0)),
        # SmolLM-360M, SmolLM2-1.7B/-360M (base) and loubnabnl/smollm2-*-sft (SmolLM2's chat template).
        "smollm_base": (k["gpt2"](SMOLLM_SPECIALS), dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                                         unk_token="<|endoftext|>"),
                        LlamaConfig, dict(sp, tie_word_embeddings=True, rope_theta=100000.0)),
        "smollm2_sft": (k["gpt2"](SMOLLM_SPECIALS), dict(bos_token="<|im_start|>", eos_token="<|im_end|>",
                                                         pad_token="<|im_end|>", unk_token="<|endoftext|>", chat_template=SMOLLM2),
                        LlamaConfig, dict(sp, tie_word_embeddings=True, rope_theta=130000.0)),
        # SmolLM3-3B-Base and SmolLM3-3B-checkpoints (it-mid-training, it-SFT): SmolLM3's template.
        "smollm3_base": (k["llama3"]([], SMOLLM3_SPECIALS), dict(bos_token=None, eos_token="<|end_of_text|>",
                                                                pad_token="<|finetune_right_pad_id|>", chat_template=SMOLLM3),
                         SmolLM3Config, dict(sp, num_hidden_layers=4, no_rope_layer_interval=4, rope_theta=5000000.0)),
        "smollm3_checkpoints": (k["llama3"]([], SMOLLM3_SPECIALS), dict(bos_token=None, eos_token="<|im_end|>",
                                                                       pad_token="<|im_end|>", chat_template=SMOLLM3),
                                SmolLM3Config, dict(sp, num_hidden_layers=4, no_rope_layer_interval=4, rope_theta=5000000.0)),
    }


CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is 7 + 5? Answer with a number."},
    {"role": "assistant", "content": "7 + 5 = 12. The answer is 12."},
]
TEXT = "Hello world! The quick brown fox jumps over the lazy dog; 1234 + 5678 = 6912.\n\tdef f(x): return x ** 2 # ünïcödé"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: seed_hub.py SHARED_TOKENIZERS_DIR")
    kinds = tokenizers(pathlib.Path(sys.argv[1]))
    for name, (tok, tcfg, cls, kwargs) in repos(kinds).items():
        d = out_root / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False, indent=None) + "\n")
        conf = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1000000000000000019884624838656,
                "clean_up_tokenization_spaces": False, **tcfg}
        (d / "tokenizer_config.json").write_text(json.dumps(conf, indent=2, ensure_ascii=False) + "\n")
        t = AutoTokenizer.from_pretrained(str(d))
        vocab = len(t)
        ids = {f"{k}_id": t.convert_tokens_to_ids(tcfg[k]) if tcfg.get(k) else None for k in ("bos_token", "eos_token", "pad_token")}
        cfg = cls(vocab_size=vocab, **{**COMMON, **kwargs}, **ids)
        cfg.save_pretrained(str(d))
        GenerationConfig.from_model_config(cfg).save_pretrained(str(d))
        check = {"transformers": transformers.__version__, "text": TEXT, "ids": t(TEXT)["input_ids"], "vocab_size": vocab}
        if t.chat_template:
            chat = t.apply_chat_template(CONVERSATION, tokenize=False, enable_thinking=False)
            check["chat_text"] = chat
            check["chat_ids"] = t(chat, add_special_tokens=False)["input_ids"]
        (d / "check.json").write_text(json.dumps(check, ensure_ascii=False, indent=1) + "\n")
        print(name, "vocab", vocab, "text ids", len(check["ids"]))


if __name__ == "__main__":
    main()
