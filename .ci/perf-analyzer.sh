#!/usr/bin/env bash
# Triton's own benchmark tool against batchgate's v2 front door, with no
# hand-written shapes: perf_analyzer (the binary bundled in
# tritonclient[all]==2.41.0; it needs libb64 and the CUDA runtime's
# library, nothing of a GPU) learns from ModelConfig that the model
# batches (`-b 8`), streams (`--streaming`), speaks REST (`-i http`, the
# binary tensor extension), and reports the server-side queue and compute
# times from ModelStatistics.
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
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/50083") 2>/dev/null && break; sleep 0.1; done

status=0
check() { # NAME ARGS...: runs perf_analyzer, wants client and server figures
  local name=$1; shift
  if ! timeout 120 "$work/venv/bin/perf_analyzer" -m echo \
      --measurement-interval 1500 "$@" >"$work/$name.txt" 2>&1; then
    echo "perf_analyzer $name failed:"; cat "$work/$name.txt"; status=1; return
  fi
  if ! grep -q "Server:" "$work/$name.txt" || ! grep -Eq "queue [0-9]+ usec .*compute infer [0-9]+ usec" "$work/$name.txt"; then
    echo "perf_analyzer $name reported no server-side times:"; cat "$work/$name.txt"; status=1; return
  fi
  echo "perf_analyzer $name: $(grep -E '^Concurrency' "$work/$name.txt" | tail -1)"
  grep -E "Avg request latency" "$work/$name.txt" | sed 's/^ */  server: /'
}
grpc=(-u 127.0.0.1:50083 -i grpc)
check grpc-batch-8 "${grpc[@]}" -b 8 --concurrency-range 16
check grpc-streaming "${grpc[@]}" --streaming --concurrency-range 64
check http-batch-8 -u 127.0.0.1:8083 -i http -b 8 --concurrency-range 16
if [ "$status" -ne 0 ]; then
  echo "--- server log"; tail -30 "$work/server.log"
  exit 1
fi
