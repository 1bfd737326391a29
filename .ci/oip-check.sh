#!/usr/bin/env bash
# The Open Inference Protocol from outside (tests/foreign/oip/):
# tritonclient[grpc] against a live batchgate's v2 front door, and MLServer
# as a real v2 server behind the kserve kind (killed mid-run). Both from
# PyPI, in a venv of their own (they pin a protobuf older than the SDK's).
set -euo pipefail
bin=${1:?usage: oip-check.sh path/to/batchgate}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pid=
ml=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  [ -n "$ml" ] && kill "$ml" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check 'tritonclient[grpc,http]==2.73.0' 'mlserver>=1.7,<1.8' 'uvloop<0.22' 'numpy>=1.24'
"$work/venv/bin/pip" list --disable-pip-version-check 2>/dev/null | grep -iE '^(tritonclient|mlserver|grpcio|protobuf) '

"$bin" serve --config "$root/tests/foreign/oip/batchgate.toml" >"$work/server.log" 2>&1 &
pid=$!
ready() { (exec 3<>"/dev/tcp/127.0.0.1/20083") 2>/dev/null; }
for _ in $(seq 1 100); do ready && break; sleep 0.1; done
(cd "$root/tests/foreign/oip/mlserver" && exec "$work/venv/bin/mlserver" start . >"$work/mlserver.log" 2>&1) &
ml=$!
disown "$ml"

status=0
"$work/venv/bin/python" "$root/tests/foreign/oip/tritonclient_check.py" \
  --addr 127.0.0.1:20083 --metrics 127.0.0.1:9483 --http 127.0.0.1:8083 || status=1
ml_ready() { (exec 3<>"/dev/tcp/127.0.0.1/18091") 2>/dev/null; }
for _ in $(seq 1 600); do ml_ready && break; sleep 0.1; done
"$work/venv/bin/python" "$root/tests/foreign/oip/mlserver_check.py" \
  --addr 127.0.0.1:20083 --metrics 127.0.0.1:9483 --mlserver-pid "$ml" || status=1
if [ "$status" -ne 0 ]; then
  echo "--- server log"; tail -50 "$work/server.log"
  echo "--- mlserver log"; tail -50 "$work/mlserver.log"
  exit 1
fi
