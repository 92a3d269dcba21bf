#!/usr/bin/env bash
# Installs the official XLA CPU PJRT plugin (PyPI wheel xla-cpu-pjrt, by google-ml) for go-xla.
#
#   tools/install-xla-cpu.sh [DIR]
#
# DIR defaults to ~/.cache/handbook/xla-cpu. The plugin lands there as pjrt_c_api_cpu_plugin.so,
# the name go-xla looks for, and the script prints how to use it:
#   GOMLX_BACKEND=xla:DIR/pjrt_c_api_cpu_plugin.so          (one program or test run)
#   PJRT_PLUGIN_LIBRARY_PATH=DIR, then GOMLX_BACKEND=xla:cpu (go-xla's search path)
# The zero package's multi-device tests find it in the default DIR on their own.
#
# The default DIR is deliberately not one of go-xla's default search paths (~/.local/lib/go-xla,
# /usr/local/lib/go-xla): a plugin there makes handbook/backend pick XLA for every program and
# test, while the project's tests are meant to run on the Go backend unless asked otherwise.
#
# Why 0.0.1: it is the only release of xla-cpu-pjrt on PyPI (2026-11). It implements PJRT C API
# v0.81; go-xla v0.4.13 is built against v0.104 headers and the struct-size handshake of the C
# API lets it drive the older plugin (checked: compile, execute, 4 forced host devices, SPMD).
# Needs: python3 with pip (any venv) and unzip or python3's zipfile.
set -euo pipefail

version="${XLA_CPU_PJRT_VERSION:-0.0.1}"
dir="${1:-$HOME/.cache/handbook/xla-cpu}"
pip="${PIP:-}"
if [[ -z "$pip" ]]; then
  if command -v pip3 >/dev/null 2>&1; then pip="pip3"
  elif command -v pip >/dev/null 2>&1; then pip="pip"
  else pip="python3 -m pip"; fi
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
$pip download --quiet --no-deps --only-binary=:all: "xla-cpu-pjrt==${version}" -d "$tmp"
wheel="$(ls "$tmp"/xla_cpu_pjrt-*.whl)"
python3 - "$wheel" "$tmp/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
so="$(find "$tmp/unpacked" -name 'xla_cpu_pjrt.so' | head -n1)"
if [[ -z "$so" ]]; then
  echo "install-xla-cpu: no xla_cpu_pjrt.so inside $wheel" >&2
  exit 1
fi
mkdir -p "$dir"
install -m 0755 "$so" "$dir/pjrt_c_api_cpu_plugin.so.tmp"
mv -f "$dir/pjrt_c_api_cpu_plugin.so.tmp" "$dir/pjrt_c_api_cpu_plugin.so"
echo "installed xla-cpu-pjrt ${version} as $dir/pjrt_c_api_cpu_plugin.so"
echo "use: GOMLX_BACKEND=xla:$dir/pjrt_c_api_cpu_plugin.so  (4 host devices: this plugin takes its count from the client option cpu_device_count, default 4, not from XLA_FLAGS)"
