#!/usr/bin/env bash
# The churn-and-memory drill (tests/foreign/churn/drill.py), from Python
# grpcio against a live batchgate run under an address-space cap
# (prlimit --as): the worst requests we can build while a good client
# checks every answer, an idempotent retry after the first caller's
# deadline, and 10 cycles of endpoint and queue churn. Exact counts,
# bounded RSS, the server alive at the end.
set -euo pipefail
bin=$(realpath "${1:?usage: churn.sh path/to/batchgate}")
root=$(cd "$(dirname "$0")/.." && pwd)
# The address-space cap (virtual memory: heap, thread stacks, allocator
# arenas) and the RSS the drill asserts: the chart's memory limit is 512 MiB.
as_cap_mb=${AS_CAP_MB:-768}
rss_cap_mb=${RSS_CAP_MB:-512}
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check 'grpcio-tools==1.85.1' "$root/python"
mkdir "$work/gen"
"$work/venv/bin/python" -m grpc_tools.protoc -I "$root/proto" --python_out="$work/gen" \
  --grpc_python_out="$work/gen" inference/grpc_predict_v2.proto

# The allocator settings the Dockerfile and the chart set: two arenas, and
# large buffers (a 4 MiB message) mapped and unmapped instead of kept.
MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 \
  prlimit --as=$((as_cap_mb * 1024 * 1024)) \
  "$bin" serve --config "$root/tests/foreign/churn/batchgate.toml" >"$work/server.log" 2>&1 &
pid=$!
ready() { (exec 3<>"/dev/tcp/127.0.0.1/20091") 2>/dev/null; }
for _ in $(seq 1 100); do ready && break; sleep 0.1; done

status=0
PYTHONPATH="$work/gen" "$work/venv/bin/python" "$root/tests/foreign/churn/drill.py" \
  --addr 127.0.0.1:20091 --metrics 127.0.0.1:9491 --pid "$pid" --rss-cap-mb "$rss_cap_mb" || status=1
grep -E '^Vm(Peak|HWM)' "/proc/$pid/status" | tr -s ' ' || true
if ! kill -0 "$pid" 2>/dev/null; then
  echo "batchgate died under the ${as_cap_mb} MiB address-space cap" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "--- server log"; tail -50 "$work/server.log"
  exit 1
fi
echo "churn drill: passed under a ${as_cap_mb} MiB address-space cap"
