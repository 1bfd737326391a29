#!/usr/bin/env bash
# Backpressure from foreign clients: a Python grpcio client and a Node
# @grpc/grpc-js client each stream 20,000 tiny items into a slow queue and
# into a paused queue, with unrelated unary calls on the same connection
# (tests/foreign/). Installs grpcio from PyPI and grpc-js from npm.
set -euo pipefail
bin=${1:?usage: foreign-clients.sh path/to/batchgate}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check 'grpcio>=1.60,<2' 'grpcio-tools>=1.60,<2'
mkdir -p "$work/gen"
"$work/venv/bin/python" -m grpc_tools.protoc -I "$root/proto" \
  --python_out="$work/gen" --grpc_python_out="$work/gen" "$root"/proto/batchgate/v1/*.proto
(cd "$root/tests/foreign/node" && npm ci --no-audit --no-fund --silent)
node --version

"$bin" serve --config "$root/tests/foreign/backpressure.toml" >"$work/server.log" 2>&1 &
pid=$!
ready() { (exec 3<>"/dev/tcp/127.0.0.1/20081") 2>/dev/null; }
for _ in $(seq 1 100); do ready && break; sleep 0.1; done

status=0
PYTHONPATH="$work/gen" "$work/venv/bin/python" "$root/tests/foreign/python/backpressure.py" \
  --addr 127.0.0.1:20081 --items 20000 || status=1
node "$root/tests/foreign/node/backpressure.js" --addr 127.0.0.1:20081 --items 20000 || status=1
if [ "$status" -ne 0 ] || grep -q "failed serving connection: http2 error" "$work/server.log"; then
  echo "--- server log"; cat "$work/server.log"
  exit 1
fi
