#!/usr/bin/env python3
"""Regenerate the golden files of package tokenizer (tokenizer/testdata/).

Usage: python tools/oracle/tokenizer_goldens.py [--shared ../shared]

It needs the PyPI packages `tokenizers`, `transformers` and `jinja2`; `go test`
never runs it. It writes, under tokenizer/testdata/:

  corpus.json.gz                  the test corpus (a list of strings, >= 2,000 entries)
  synthetic/<name>/tokenizer.json tiny tokenizers built here with `tokenizers`
                                  (Unigram + byte fallback, WordPiece, byte-level
                                  BPE with ignore_merges and tricky added tokens,
                                  BPE with subword prefix and word suffix)
  <name>/encode_goldens.json.gz   ids with and without special tokens, decodes
  <name>/chat_goldens.json.gz     apply_chat_template texts and assistant masks

The real fixtures (qwen3, mistral) are gzipped copies of
../shared/fixtures/tokenizers/{qwen3,mistral}; the script refreshes them too.
"""

import argparse
import gzip
import json
import os
import random
import shutil
import sys

import tokenizers
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import AddedToken

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TESTDATA = os.path.join(ROOT, "tokenizer", "testdata")

# The alignment-handbook's DEFAULT_CHAT_TEMPLATE (zephyr), as in
# recipes/zephyr-7b-beta/sft/config_full.yaml.
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)

# A ChatML template whose assistant turns sit in {% generation %} blocks, the
# form transformers' return_assistant_tokens_mask needs.
GENERATION_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\n' }}"
    "{%- generation %}"
    "{{- message['content'] + '<|im_end|>' }}"
    "{%- endgeneration %}"
    "{{- '\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)


def make_corpus():
    rng = random.Random(20261128)
    words = ("the quick brown fox jumps over lazy dog alignment handbook tokenizer don't we'll I'm "
             "it's they've you're HELLO World Straße naïve café résumé coöperate über").split()
    code = [
        "def f(x):\n    return x ** 2  # square",
        "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
        "if err != nil {\n\t\treturn fmt.Errorf(\"load %s: %w\", path, err)\n\t}",
        "<div class=\"x\">&nbsp;&amp;</div>",
        "SELECT * FROM users WHERE id = 42;",
        "x = {'a': [1, 2, 3], \"b\": None}",
        "    \n\n   \t\t  indented",
        "#include <stdio.h>\nint main(){printf(\"%d\\n\", 1234567);}",
    ]
    cjk = ["你好，世界！", "日本語のテキストです。", "한국어 문장입니다", "中文分词测试：机器学习模型", "東京タワー"]
    emoji = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🤗 Hugging Face", "∑∫√∞≈≠", "…", "—", "“quotes”"]
    arabic = ["مرحبا بالعالم", "اللغة العربية جميلة", "שלום עולם", "Привет, мир!", "Γειά σου Κόσμε", "नमस्ते दुनिया"]
    specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>", "<think>", "</think>",
                "<tool_call>", "[INST]", "<mask>", "<|user|>"]
    digits = ["1234567", "3.14159265358979", "2026-11-28", "0000000000", "1,000,000", "-42", "1e-9",
              "12345678901234567890", "v1.2.3", "0x7FFFFFFF"]
    spaces = ["  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "      "]
    pools = [words, code, cjk, emoji, arabic, specials, digits, spaces]
    corpus = [
        "", " ", "  ", "\n", "Hello world", " Hello world", "Hello  world", "Hello world ", "hello\nworld",
        "1234567", "a1234567b", "  leading", "trailing  ", "<s>", "<s>hello</s>", "<|im_start|>user\nhi<|im_end|>",
        "<|im_start|><|im_end|>", "<unk>", "▁", "▁▁hello", "ÿ", "\x00\x01\x7f", "\ufffd", "a\u0301",
        "ﬁ ﬀ ① ㎏ Ａ", "don't I'LL we'Re", "日本", "x" * 300, "ab" * 500, "lowest newer wider",
    ]
    while len(corpus) < 2100:
        n = rng.randint(1, 12)
        parts = []
        for _ in range(n):
            pool = rng.choice(pools)
            parts.append(rng.choice(pool))
        sep = rng.choice([" ", "", " ", "\n", " ", "  "])
        corpus.append(sep.join(parts))
    long_text = []
    while sum(len(x) for x in long_text) < 14000:
        long_text.append(rng.choice(words))
    corpus.append(" ".join(long_text))
    corpus.append("".join(long_text))  # a 14 KB "single word"
    corpus.append("\n".join(corpus[30:400]))
    return corpus


def build_synthetic(corpus, outdir):
    train_text = [c for c in corpus if c][:1500]
    built = {}

    # Unigram with byte fallback (SentencePiece-like, metaspace pre-tokenizer).
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Strip(left=False, right=True)])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first"), decoders.ByteFallback(), decoders.Fuse()])
    tok.train_from_iterator(train_text, trainers.UnigramTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>"))
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    have = {p for p, _ in vocab}
    for b in range(256):
        piece = "<0x%02X>" % b
        if piece not in have:
            vocab.append([piece, 0.0])
    spec["model"]["byte_fallback"] = True
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    spec["post_processor"] = json.loads(processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]).__getstate__())
    built["unigram"] = Tokenizer.from_str(json.dumps(spec))

    # WordPiece (BERT-like).
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.train_from_iterator(train_text, trainers.WordPieceTrainer(vocab_size=800, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]")))
    built["wordpiece"] = tok

    # GPT-2 style byte-level BPE with ignore_merges and tricky added tokens.
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(train_text, trainers.BpeTrainer(vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                            special_tokens=["<|endoftext|>"]))
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|endoftext|> $A", pair="<|endoftext|> $A $B",
                                      special_tokens=[("<|endoftext|>", tok.token_to_id("<|endoftext|>"))]),
    ])
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, special=True)])
    tok.add_special_tokens([AddedToken("[INST]", lstrip=False, rstrip=True, special=True)])
    tok.add_tokens([AddedToken("fox", single_word=True, normalized=True),
                    AddedToken("ÉTÉ", normalized=True),
                    AddedToken("<think>", normalized=False, special=False),
                    AddedToken("</think>", normalized=False, special=False)])
    built["bytelevel"] = tok

    # BPE with continuing_subword_prefix and end_of_word_suffix, several pre-tokenizers.
    tok = Tokenizer(models.BPE(unk_token="<unk>", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase(),
                                           normalizers.Replace("``", "\""), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.Punctuation()])
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    tok.train_from_iterator(train_text, trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>"], continuing_subword_prefix="##",
                                                            end_of_word_suffix="</w>", limit_alphabet=120))
    built["suffixbpe"] = tok

    for name, tok in built.items():
        d = os.path.join(outdir, "synthetic", name)
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"))
    return {name: Tokenizer.from_file(os.path.join(outdir, "synthetic", name, "tokenizer.json")) for name in built}


def encode_goldens(tok, corpus):
    cases = []
    for text in corpus:
        plain = tok.encode(text, add_special_tokens=False)
        special = tok.encode(text, add_special_tokens=True)
        cases.append({
            "text": text,
            "ids": plain.ids,
            "ids_special": special.ids,
            "decoded": tok.decode(special.ids, skip_special_tokens=False),
            "decoded_skip": tok.decode(special.ids, skip_special_tokens=True),
        })
    return {"tokenizers_version": tokenizers.__version__, "cases": cases}


CONVERSATIONS = {
    "single": [{"role": "user", "content": "Hello!"}],
    "system": [{"role": "system", "content": "You are a helpful assistant."},
               {"role": "user", "content": "What is 1234567 + 1?"},
               {"role": "assistant", "content": "It is 1234568."}],
    "multi": [{"role": "user", "content": "Hi there"},
              {"role": "assistant", "content": "Hello! How can I help?"},
              {"role": "user", "content": "Write 你好 and 😀\n  with spaces  "},
              {"role": "assistant", "content": "你好 😀\n  with spaces  "}],
    "thinking": [{"role": "user", "content": "2+2?"},
                 {"role": "assistant", "content": "<think>\nsimple sum\n</think>\n\n4"},
                 {"role": "user", "content": "and 3+3?"}],
    "tools": [{"role": "user", "content": "Weather in Paris?"},
              {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
              {"role": "tool", "content": "{\"temp\": 21}"},
              {"role": "assistant", "content": "It is 21 degrees."}],
}

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                                                          "required": ["city"]}}}]


def chat_goldens(hf, template_name, template, file_tok=None):
    cases = []
    for conv_name, msgs in CONVERSATIONS.items():
        for agp in (False, True):
            variants = [{}]
            if template_name == "native" and "enable_thinking" in (template or hf.chat_template or ""):
                variants = [{}, {"enable_thinking": False}, {"enable_thinking": True}]
            for extra in variants:
                tools = TOOLS if conv_name == "tools" else None
                if conv_name == "tools" and template_name != "native":
                    continue
                kwargs = dict(extra)
                text = hf.apply_chat_template(msgs, tools=tools, add_generation_prompt=agp, tokenize=False,
                                              chat_template=template, **kwargs)
                case = {"conversation": conv_name, "messages": msgs, "add_generation_prompt": agp, "kwargs": extra, "text": text}
                if tools:
                    case["tools"] = tools
                if template_name == "generation":
                    out = file_tok.apply_chat_template(msgs, add_generation_prompt=agp, tokenize=True, return_dict=True,
                                                 return_assistant_tokens_mask=True, chat_template=template)
                    case["ids"] = list(out["input_ids"])
                    case["assistant_masks"] = list(out["assistant_masks"])
                cases.append(case)
    return {"template_name": template_name, "template": template, "cases": cases}


def write_gz(path, obj):
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as f:
        json.dump(obj, f, ensure_ascii=False)
    # gzip stores a timestamp; zero it so reruns are byte-identical.
    with open(path, "r+b") as f:
        f.seek(4)
        f.write(b"\0\0\0\0")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    args = ap.parse_args()
    corpus = make_corpus()
    write_gz(os.path.join(TESTDATA, "corpus.json.gz"), corpus)

    for name in ("qwen3", "mistral"):
        src = os.path.join(args.shared, "fixtures", "tokenizers", name)
        dst = os.path.join(TESTDATA, name)
        os.makedirs(dst, exist_ok=True)
        with open(os.path.join(src, "tokenizer.json"), "rb") as f:
            data = f.read()
        with gzip.GzipFile(os.path.join(dst, "tokenizer.json.gz"), "wb", compresslevel=9, mtime=0) as f:
            f.write(data)
        shutil.copyfile(os.path.join(src, "tokenizer_config.json"), os.path.join(dst, "tokenizer_config.json"))
        tok = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
        write_gz(os.path.join(dst, "encode_goldens.json.gz"), encode_goldens(tok, corpus))

        hf = transformers.AutoTokenizer.from_pretrained(src)
        chats = []
        if hf.chat_template:
            chats.append(chat_goldens(hf, "native", None))
        chats.append(chat_goldens(hf, "zephyr", ZEPHYR_TEMPLATE))
        # transformers 5 rebuilds Llama-family pipelines instead of reading tokenizer.json
        # (Mistral: no normalizer, Metaspace prepend_scheme=always), so the ids of the
        # assistant-mask goldens come from a tokenizer that runs tokenizer.json as written.
        file_tok = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(src, "tokenizer.json"),
                                                        eos_token=hf.eos_token, bos_token=hf.bos_token)
        chats.append(chat_goldens(hf, "generation", GENERATION_TEMPLATE, file_tok))
        write_gz(os.path.join(dst, "chat_goldens.json.gz"), {"transformers_version": transformers.__version__, "templates": chats})

    for name, tok in build_synthetic(corpus, TESTDATA).items():
        write_gz(os.path.join(TESTDATA, "synthetic", name, "encode_goldens.json.gz"), encode_goldens(tok, corpus))
    print("goldens written to", TESTDATA, file=sys.stderr)


if __name__ == "__main__":
    main()
