#!/usr/bin/env bash
# Triton's own benchmark tool against batchgate's v2 front door, with no
# hand-written shapes: perf_analyzer (the binary bundled in
# tritonclient[all]==2.41.0; it needs libb64 and the CUDA runtime's
# library, nothing of a GPU) learns from ModelConfig that the model
# batches (`-b 8`), streams (`--streaming`), speaks REST (`-i http`, the
# binary tensor extension), and reports the server-side queue and compute
# times from ModelStatistics. A BYTES model and a variable-length one
# (lengths from a long tail, given as data: perf_analyzer needs a shape
# for a -1 dimension, and takes each request's from --input-data).
set -euo pipefail
bin=${1:?usage: perf-analyzer.sh path/to/batchgate}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if ! ldconfig -p | grep -q libb64.so.0d; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends libb64-0d >/dev/null
fi
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check 'tritonclient[all]==2.41.0' nvidia-cuda-runtime-cu12
LD_LIBRARY_PATH=$("$work/venv/bin/python" -c 'import nvidia.cuda_runtime as m, os; print(os.path.join(list(m.__path__)[0], "lib"))')
export LD_LIBRARY_PATH

"$bin" serve --config "$root/tests/foreign/oip/batchgate.toml" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/20083") 2>/dev/null && break; sleep 0.1; done

status=0
check() { # NAME MODEL ARGS...: runs perf_analyzer, wants client and server figures
  local name=$1 model=$2; shift 2
  if ! timeout 120 "$work/venv/bin/perf_analyzer" -m "$model" \
      --measurement-interval 1500 "$@" >"$work/$name.txt" 2>&1; then
    echo "perf_analyzer $name failed:"; cat "$work/$name.txt"; status=1; return
  fi
  if ! grep -q "Server:" "$work/$name.txt" || ! grep -Eq "queue [0-9]+ usec .*compute infer [0-9]+ usec" "$work/$name.txt"; then
    echo "perf_analyzer $name reported no server-side times:"; cat "$work/$name.txt"; status=1; return
  fi
  echo "perf_analyzer $name: $(grep -E '^Concurrency' "$work/$name.txt" | tail -1)"
  grep -E "Avg request latency" "$work/$name.txt" | sed 's/^ */  server: /'
}
grpc=(-u 127.0.0.1:20083 -i grpc)
"$work/venv/bin/python" - "$work/tokens.json" <<'EOF'
import json, random, sys
random.seed(7)
steps = []
for _ in range(64):
    n = min(128, int(random.paretovariate(1.2) * 4))  # long-tailed lengths
    steps.append({"IDS": {"content": list(range(n)), "shape": [n]}})
json.dump({"data": steps}, open(sys.argv[1], "w"))
EOF
check grpc-batch-8 echo "${grpc[@]}" -b 8 --concurrency-range 16
check grpc-streaming echo "${grpc[@]}" --streaming --concurrency-range 64
check http-batch-8 echo -u 127.0.0.1:8083 -i http -b 8 --concurrency-range 16
check bytes-batch-4 text "${grpc[@]}" -b 4 --concurrency-range 16
check variable-length tokens "${grpc[@]}" --input-data "$work/tokens.json" --concurrency-range 32
check variable-length-http tokens -u 127.0.0.1:8083 -i http --input-data "$work/tokens.json" --concurrency-range 16
if [ "$status" -ne 0 ]; then
  echo "--- server log"; tail -30 "$work/server.log"
  exit 1
fi
