#!/usr/bin/env python3
"""Builds recipes/tiny/model's tokenizer: byte-level BPE with no merges (one token per byte, so a
tiny model can reverse, sort and add character by character) plus ChatML special tokens, and a
tokenizer_config.json whose ChatML template marks assistant turns with {% generation %}.

Regenerate only on purpose; checks that transformers loads the result and renders the template.
"""
import json
import pathlib
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from tokenizers.pre_tokenizers import ByteLevel

root = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(root))
out = root / "recipes" / "tiny" / "model"
out.mkdir(parents=True, exist_ok=True)

alphabet = ByteLevel.alphabet()
vocab = {ch: i for i, ch in enumerate(sorted(alphabet, key=lambda c: ord(c)))}
tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
tok.decoder = decoders.ByteLevel()
specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
tok.add_special_tokens(specials)
tok.save(str(out / "tokenizer.json"))

chatml = (root / "tokenizer" / "chat.go").read_text()
start = chatml.index('const ChatMLTemplate = "') + len('const ChatMLTemplate = "')
template = json.loads('"' + chatml[start:chatml.index('"\n', start)] + '"')
# The newline after <|im_end|> goes inside the generation block: TRL's preference data ends each
# completion with it, so the SFT model must have learned it before DPO scores it.
closing = "{%- endgeneration %}{{- '\n' }}"
assert closing in template, "ChatMLTemplate changed: update the generation block edit"
template = template.replace(closing, "{{- '\n' }}{%- endgeneration %}")
config = {
    "tokenizer_class": "PreTrainedTokenizerFast",
    "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
    "model_max_length": 256, "add_bos_token": False, "add_eos_token": False,
    "chat_template": template,
}
(out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")

from transformers import AutoTokenizer
t = AutoTokenizer.from_pretrained(str(out))
msgs = [{"role": "user", "content": "Reverse: abc"}, {"role": "assistant", "content": "cba"}]
enc = t.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
print(len(t), "tokens; eos", t.eos_token_id, "pad", t.pad_token_id)
print(repr(t.apply_chat_template(msgs, tokenize=False)))
print(enc["assistant_masks"])
