#!/usr/bin/env python3
"""Record which code points HF `tokenizers` puts in each regex class.

Usage: python tools/oracle/tokenizer_unicode_classes.py

HF `tokenizers` runs Split/ByteLevel regexes on Oniguruma and the Whitespace
pre-tokenizer's \\w+|[^\\w\\s]+ on another engine; each has its own Unicode version,
and neither matches Go's unicode tables (Go 1.27: Unicode 17). This script asks
`tokenizers` itself, code point by code point, and writes
tokenizer/testdata/unicode_classes.json.gz:

  onig.<class>        ranges [lo, hi] matched by \\p{L} \\p{M} \\p{N} \\p{P} \\p{S} \\s \\d
                      in a Split regex
  whitespace_word     ranges that the Whitespace pre-tokenizer treats as \\w
  whitespace_space    ranges that it treats as \\s

tokenizer/unicode_compat_test.go checks Go's tables against it (and regenerates
tokenizer/unicode_table.go with HANDBOOK_UPDATE_UNICODE_TABLE=1).
"""

import os
import sys

import tokenizers
from tokenizers import Regex, pre_tokenizers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer_goldens import TESTDATA, write_gz  # noqa: E402

CLASSES = {"L": r"\p{L}", "M": r"\p{M}", "N": r"\p{N}", "P": r"\p{P}", "S": r"\p{S}", "s": r"\s", "d": r"\d"}
CPS = [c for c in range(0x110000) if not (0xD800 <= c < 0xE000)]


def ranges(cps):
    out = []
    for c in sorted(cps):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def onig_class(pat):
    text = "".join(chr(c) for c in CPS)
    keep = bytearray(len(CPS))
    for _, (a, b) in pre_tokenizers.Split(Regex(pat), behavior="removed").pre_tokenize_str(text):
        for i in range(a, b):
            keep[i] = 1
    return [CPS[i] for i in range(len(CPS)) if not keep[i]]


def whitespace_classes():
    # "a" + c: one piece "ac" when c is \w, pieces "a" and "c" when it is neither,
    # just "a" when it is \s.
    text = " ".join("a" + chr(c) for c in CPS)
    starts = {3 * i: c for i, c in enumerate(CPS)}
    word, other = set(), set()
    for _, (a, b) in pre_tokenizers.Whitespace().pre_tokenize_str(text):
        if a in starts and b - a == 2:
            word.add(starts[a])
        elif a - 1 in starts:
            other.add(starts[a - 1])
    space = set(CPS) - word - other
    return sorted(word), sorted(space)


def main():
    out = {"tokenizers_version": tokenizers.__version__, "onig": {k: ranges(onig_class(p)) for k, p in CLASSES.items()}}
    word, space = whitespace_classes()
    out["whitespace_word"], out["whitespace_space"] = ranges(word), ranges(space)
    write_gz(os.path.join(TESTDATA, "unicode_classes.json.gz"), out)
    print("wrote", os.path.join(TESTDATA, "unicode_classes.json.gz"), file=sys.stderr)


if __name__ == "__main__":
    main()
