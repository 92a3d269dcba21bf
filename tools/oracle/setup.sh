#!/usr/bin/env bash
# Create (or update) the Python virtualenv for the oracle scripts, outside the repository.
#
#   tools/oracle/setup.sh            # venv at ${HANDBOOK_ORACLE_VENV:-$HOME/.cache/handbook/oracle-venv}
#   HANDBOOK_ORACLE_VENV=/path tools/oracle/setup.sh
#   HANDBOOK_ORACLE_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple" \
#       tools/oracle/setup.sh        # e.g. CPU-only torch wheel, where that index is reachable
#
# Idempotent: re-running with an unchanged requirements.txt does nothing but print the venv path.
# The last line of stdout is the venv's python, so: PY=$(tools/oracle/setup.sh | tail -1)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${HANDBOOK_ORACLE_VENV:-$HOME/.cache/handbook/oracle-venv}"
req="$here/requirements.txt"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
  echo "setup.sh: need python >= 3.10 (set PYTHON=...)" >&2
  exit 1
fi

if [[ ! -x "$venv/bin/python" ]]; then
  echo "setup.sh: creating venv at $venv" >&2
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
fi

stamp="$venv/.handbook-requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$venv/bin/python" -c 'import torch, transformers, safetensors, tokenizers, numpy' 2>/dev/null; then
  echo "setup.sh: $venv is up to date" >&2
else
  echo "setup.sh: installing $req into $venv" >&2
  # shellcheck disable=SC2086  # HANDBOOK_ORACLE_PIP_ARGS is deliberately word-split
  "$venv/bin/python" -m pip install --disable-pip-version-check -q ${HANDBOOK_ORACLE_PIP_ARGS:-} -r "$req" >&2
  echo "$want" >"$stamp"
fi
echo "$venv/bin/python"
