#!/usr/bin/env bash
# The Python SDK (python/): its committed stubs match proto/ (regenerated
# with the pinned grpcio-tools), it installs with `pip install ./python`,
# and its pytest suite passes against the batchgate binary given, the ONNX
# Runtime test included. Everything goes into a fresh venv.
set -euo pipefail
bin=$(realpath "${1:?usage: python-sdk.sh path/to/batchgate}")
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
pip=("$work/venv/bin/pip" install -q --disable-pip-version-check)
"${pip[@]}" 'grpcio-tools==1.85.1'
"${pip[@]}" "$root/python[test]"
"$work/venv/bin/pip" list --disable-pip-version-check 2>/dev/null | grep -iE '^(grpcio|protobuf|numpy|onnx|onnxruntime) '

# The stubs: regenerate into a copy and compare.
cp -r "$root/python" "$work/regen"
PYTHON="$work/venv/bin/python" PROTO="$root/proto" bash "$work/regen/generate.sh"
if ! diff -r -q "$root/python/batchgate/v1" "$work/regen/batchgate/v1" -x __pycache__; then
  echo "python/batchgate/v1 is stale: run python/generate.sh (grpcio-tools==1.85.1) and commit" >&2
  exit 1
fi

# Tests run against the installed package, not the source tree.
cd "$work"
BATCHGATE_BIN="$bin" "$work/venv/bin/python" -m pytest -q -p no:cacheprovider \
  --rootdir "$root/python" "$root/python/tests"
