#!/usr/bin/env bash
# The Open Inference Protocol from outside: tritonclient[grpc] (PyPI, in a
# venv of its own: it pins a protobuf older than the SDK's) against a live
# batchgate's v2 front door (tests/foreign/oip/).
set -euo pipefail
bin=${1:?usage: oip-check.sh path/to/batchgate}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check 'tritonclient[grpc]==2.73.0' 'numpy>=1.24'
"$work/venv/bin/pip" list --disable-pip-version-check 2>/dev/null | grep -iE '^(tritonclient|grpcio|protobuf) '

"$bin" serve --config "$root/tests/foreign/oip/batchgate.toml" >"$work/server.log" 2>&1 &
pid=$!
ready() { (exec 3<>"/dev/tcp/127.0.0.1/50083") 2>/dev/null; }
for _ in $(seq 1 100); do ready && break; sleep 0.1; done

if ! "$work/venv/bin/python" "$root/tests/foreign/oip/tritonclient_check.py" \
  --addr 127.0.0.1:50083 --metrics 127.0.0.1:9483; then
  echo "--- server log"; cat "$work/server.log"
  exit 1
fi
