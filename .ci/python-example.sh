#!/usr/bin/env bash
# The Python example end to end: a grpcio Backend, batchgate in front of it,
# and a grpcio client whose every answer is checked. Stubs come from proto/
# through grpcio-tools; everything is installed into a fresh venv.
set -euo pipefail
bin=${1:?usage: python-example.sh path/to/batchgate}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check 'grpcio>=1.60,<2' 'grpcio-tools>=1.60,<2'
"$work/venv/bin/python" --version
"$work/venv/bin/pip" list --disable-pip-version-check 2>/dev/null | grep -i '^grpcio'
PYTHON="$work/venv/bin/python" bash "$root/examples/python/generate.sh"
export PYTHONPATH="$root/examples/python/gen"

"$work/venv/bin/python" "$root/examples/python/backend.py" --port 50071 >"$work/backend.log" 2>&1 &
pids+=($!)
"$bin" serve --config "$root/examples/python/batchgate.toml" >"$work/server.log" 2>&1 &
pids+=($!)

ready() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 100); do
  ready 50071 && ready 50061 && break
  sleep 0.1
done

if ! "$work/venv/bin/python" "$root/examples/python/client.py" --addr 127.0.0.1:50061 --queue py --items 500; then
  echo "--- backend log"; cat "$work/backend.log"
  echo "--- server log"; cat "$work/server.log"
  exit 1
fi
