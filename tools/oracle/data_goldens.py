"""Fixtures and goldens for package data (run deliberately; go test never runs Python).

Writes under data/testdata/:
  hub/…                 small Parquet datasets in the Hub's layout (nested list<struct<role,content>> columns,
                        several shards and row groups, a config subfolder)
  trl_goldens.json.gz   TRL's own preparation (SFTTrainer._prepare_dataset, pack_dataset, the collators,
                        DPOTrainer._prepare_dataset, DataCollatorForPreference) of the rows it stores, for the
                        qwen3 and mistral tokenizers under tokenizer/testdata/ (loaded with PreTrainedTokenizerFast
                        so tokenizer.json runs as written).
  split_counts.json     datasets' train_test_split sizes for a few (rows, test_size) pairs.

Usage: $PY tools/oracle/data_goldens.py   (needs trl, datasets, pyarrow; see data/doc.go for versions)
"""
import gzip
import json
import os
import shutil
import tempfile
import types

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import transformers
import trl
from transformers import PreTrainedTokenizerFast
from trl.trainer.dpo_trainer import DataCollatorForPreference, DPOConfig, DPOTrainer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling, SFTConfig, SFTTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "data", "testdata")

# The alignment-handbook's DEFAULT_CHAT_TEMPLATE (zephyr) and ChatML with generation blocks, as in package tokenizer.
ZEPHYR = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
CHATML = "{%- for message in messages %}{%- if message['role'] == 'assistant' %}{{- '<|im_start|>assistant\n' }}{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}{{- '\n' }}{%- else %}{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"


def load_tokenizer(name):
    d = os.path.join(ROOT, "tokenizer", "testdata", name)
    tmp = tempfile.mkdtemp()
    with gzip.open(os.path.join(d, "tokenizer.json.gz")) as f, open(os.path.join(tmp, "tokenizer.json"), "wb") as g:
        g.write(f.read())
    cfg = json.load(open(os.path.join(d, "tokenizer_config.json")))
    kw = {k: cfg[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if isinstance(cfg.get(k), str)}
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(tmp, "tokenizer.json"), **kw)
    tok.chat_template = cfg.get("chat_template") or ZEPHYR
    shutil.rmtree(tmp)
    return tok


def m(role, content):
    return {"role": role, "content": content}


CONVS = [
    [m("system", "You are a happy chatbot"), m("user", "Hello!"), m("assistant", "Bonjour!"),
     m("user", "How are you?"), m("assistant", "I am doing well, thanks!")],
    [m("user", "What is 12 + 30?"), m("assistant", "42")],
    [m("user", "Spell 'cat' backwards."), m("assistant", "tac"), m("user", "And 'dog'?"), m("assistant", "god")],
    [m("user", "Écris «bonjour» en majuscules."), m("assistant", "BONJOUR")],
    [m("user", "List three colours"), m("assistant", "red, green and blue, which are the primary colours of light")],
]
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Hello world", "Counting: 1 2 3 4 5 6 7 8 9 10 11 12",
         "A longer paragraph of plain text, used for continued pre-training, with numbers like 3.14159 and 2026."]
PROMPT_COMPLETIONS = [("The sky is", " blue."), ("2 + 2 =", " 4"), ("Translate 'chat' to English:", " cat"),
                      ("Name a prime number:", " 7")]
PREFS = [
    {"chosen": CONVS[1], "rejected": [m("user", "What is 12 + 30?"), m("assistant", "41")]},
    {"chosen": CONVS[0], "rejected": CONVS[0][:-1] + [m("assistant", "Not so good tbh")]},
    {"chosen": [m("user", "Reverse 'abc'"), m("assistant", "cba")],
     "rejected": [m("user", "Reverse 'abc'"), m("assistant", "abc, which is the same string as before")]},
]
PREFS_EXPLICIT = [
    {"prompt": [m("user", "What is 7 * 6?")], "chosen": [m("assistant", "42")], "rejected": [m("assistant", "48")]},
    {"prompt": [m("system", "Be brief."), m("user", "Capital of France?")], "chosen": [m("assistant", "Paris")],
     "rejected": [m("assistant", "Lyon, I believe")]},
]
PREFS_TEXT = [{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."},
              {"prompt": "2 + 2 =", "chosen": " 4", "rejected": " 5, or so"}]


class Self(types.SimpleNamespace):
    pass


def sft_prepare(tok, rows, **kw):
    packing = kw.pop("packing", False)
    args = SFTConfig(output_dir=tempfile.mkdtemp(), report_to=[], packing=packing, use_cpu=True, bf16=False, **kw)
    me = Self(_tokenizer=tok, chat_template=None, _is_vision_dataset=False,
              completion_only_loss=("prompt" in rows[0]) if args.completion_only_loss is None else args.completion_only_loss)
    ds = datasets.Dataset.from_list(rows)
    out = SFTTrainer._prepare_dataset(me, ds, tok, args, packing, None, "train")
    return [dict(r) for r in out], args


def collate_lm(tok, examples, padding_free, multiple=None):
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    c = DataCollatorForLanguageModeling(pad_token_id=pad, padding_free=padding_free, pad_to_multiple_of=multiple)
    b = c([{k: v for k, v in e.items() if k in ("input_ids", "labels", "seq_lengths")} for e in examples])
    keep = ("input_ids", "labels", "attention_mask", "position_ids")
    return {"pad_id": pad, **{k: b[k].tolist() for k in keep if k in b}}


def dpo_prepare(tok, rows, **kw):
    args = DPOConfig(output_dir=tempfile.mkdtemp(), report_to=[], use_cpu=True, bf16=False, **kw)
    me = Self(_tokenizer=tok, args=args, _is_vision_dataset=False)
    ds = datasets.Dataset.from_list(rows)
    out = DPOTrainer._prepare_dataset(me, ds, tok, args, "train")
    return [{k: r[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for r in out]


def collate_pref(tok, examples, max_length, mode):
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    b = DataCollatorForPreference(pad_token_id=pad, max_length=max_length, truncation_mode=mode)(examples)
    return {"pad_id": pad, **{k: b[k].tolist() for k in ("input_ids", "attention_mask", "completion_mask")}}


def goldens_for(name):
    tok = load_tokenizer(name)
    cases = []

    def sft(case, rows, template=None, collate=None, **kw):
        if template is not None:
            tok.chat_template = template
        out, _ = sft_prepare(tok, rows, **kw)
        c = {"name": case, "kind": "sft", "rows": rows, "template": template, "config": kw,
             "samples": [{"input_ids": r["input_ids"], "labels": r.get("labels", r["input_ids"]),
                          "seq_lengths": r.get("seq_lengths")} for r in out]}
        if collate is not None:
            c["batch"] = collate_lm(tok, out, **collate)
            c["collate"] = collate
        cases.append(c)

    base_template = tok.chat_template
    msgs = [{"messages": c} for c in CONVS]
    sft("messages", msgs, max_length=None, collate={"padding_free": False})
    sft("messages_truncated_keep_start", msgs, max_length=12)
    sft("messages_truncated_keep_end", msgs, max_length=12, truncation_mode="keep_end")
    sft("messages_assistant_only", msgs, template=CHATML, assistant_only_loss=True, max_length=None,
        collate={"padding_free": False, "multiple": 8})
    tok.chat_template = base_template
    sft("text", [{"text": t} for t in TEXTS], max_length=None, collate={"padding_free": True})
    sft("prompt_completion", [{"prompt": p, "completion": c} for p, c in PROMPT_COMPLETIONS], max_length=None,
        collate={"padding_free": False})
    sft("prompt_completion_full_loss", [{"prompt": p, "completion": c} for p, c in PROMPT_COMPLETIONS],
        max_length=None, completion_only_loss=False)
    sft("prompt_completion_conversational",
        [{"prompt": c[:-1], "completion": c[-1:]} for c in CONVS], max_length=None)
    sft("packed_bfd", msgs + msgs[:3], max_length=64, packing=True, packing_strategy="bfd",
        collate={"padding_free": True})
    sft("packed_bfd_split", msgs, max_length=20, packing=True, packing_strategy="bfd_split")
    sft("packed_wrapped", msgs, max_length=32, packing=True, packing_strategy="wrapped",
        collate={"padding_free": False})

    def dpo(case, rows, collate_max=None, mode="keep_start", **kw):
        out = dpo_prepare(tok, rows, **kw)
        c = {"name": case, "kind": "dpo", "rows": rows, "config": kw, "samples": out}
        c["batch"] = collate_pref(tok, out, collate_max, mode)
        c["collate"] = {"max_length": collate_max, "truncation_mode": mode}
        cases.append(c)

    dpo("implicit_prompt", PREFS, max_length=None)
    dpo("implicit_prompt_truncated", PREFS, collate_max=40, mode="keep_start", max_length=40)
    dpo("implicit_prompt_truncated_keep_end", PREFS, collate_max=30, mode="keep_end", max_length=30,
        truncation_mode="keep_end")
    dpo("explicit_prompt", PREFS_EXPLICIT, max_length=None)
    dpo("text", PREFS_TEXT, max_length=None)
    return {"tokenizer": name, "eos": tok.eos_token, "cases": cases}


def write_hub():
    hub = os.path.join(OUT, "hub")
    shutil.rmtree(hub, ignore_errors=True)
    msg_type = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))

    def chat_rows(n, offset):
        rows = []
        for i in range(offset, offset + n):
            a, b = i % 17, (i * 7) % 23
            rows.append({"prompt": f"What is {a} + {b}?", "prompt_id": f"id{i:04d}",
                         "messages": [{"content": f"What is {a} + {b}?", "role": "user"},
                                      {"content": str(a + b), "role": "assistant"}]})
        return rows

    def write(path, rows, schema, row_group_size=4):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=row_group_size)

    chat_schema = pa.schema([("prompt", pa.string()), ("prompt_id", pa.string()), ("messages", msg_type)])
    d = os.path.join(hub, "ultrachat", "data")
    write(os.path.join(d, "train_sft-00000-of-00002.parquet"), chat_rows(11, 0), chat_schema)
    write(os.path.join(d, "train_sft-00001-of-00002.parquet"), chat_rows(9, 11), chat_schema)
    write(os.path.join(d, "test_sft-00000-of-00001.parquet"), chat_rows(6, 100), chat_schema)

    pref_schema = pa.schema([("prompt", pa.string()), ("chosen", msg_type), ("rejected", msg_type),
                             ("score_chosen", pa.float64())])
    prefs = []
    for i in range(10):
        q = f"What is {i} * 3?"
        prefs.append({"prompt": q, "score_chosen": 9.5,
                      "chosen": [{"content": q, "role": "user"}, {"content": str(i * 3), "role": "assistant"}],
                      "rejected": [{"content": q, "role": "user"}, {"content": str(i * 3 + 1), "role": "assistant"}]})
    d = os.path.join(hub, "ultrafeedback", "data")
    write(os.path.join(d, "train_prefs-00000-of-00001.parquet"), prefs[:7], pref_schema)
    write(os.path.join(d, "test_prefs-00000-of-00001.parquet"), prefs[7:], pref_schema)

    kw_schema = pa.schema([("messages", msg_type), ("chat_template_kwargs", pa.struct([("enable_thinking", pa.bool_())]))])
    rows = [{"messages": r["messages"], "chat_template_kwargs": {"enable_thinking": False}} for r in chat_rows(5, 50)]
    write(os.path.join(hub, "smoltalk", "data", "SFT", "everyday_no_think-00000-of-00001.parquet"), rows, kw_schema)
    write(os.path.join(hub, "smoltalk", "data", "Mid", "everyday_no_think-00000-of-00001.parquet"), rows[:2], kw_schema)

    # The Hub's Parquet conversion layout: {config}/{split}/0000.parquet.
    write(os.path.join(hub, "converted", "default", "train", "0000.parquet"), chat_rows(3, 200), chat_schema)


def split_counts():
    out = []
    for n, size in [(100, 0.1), (101, 0.1), (7, 0.5), (20, 0.33), (2000, 0.05), (30, 3), (10, 1)]:
        ds = datasets.Dataset.from_dict({"x": list(range(n))})
        s = ds.train_test_split(test_size=size, seed=0)
        out.append({"rows": n, "test_size": size, "train": len(s["train"]), "test": len(s["test"])})
    return out


def main():
    write_hub()
    goldens = {"versions": {"trl": trl.__version__, "transformers": transformers.__version__,
                            "datasets": datasets.__version__},
               "tokenizers": [goldens_for("qwen3"), goldens_for("mistral")]}
    with gzip.open(os.path.join(OUT, "trl_goldens.json.gz"), "wt") as f:
        json.dump(goldens, f, ensure_ascii=False)
    json.dump(split_counts(), open(os.path.join(OUT, "split_counts.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
