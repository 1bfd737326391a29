#!/usr/bin/env bash
# Batches paced by the backend against fixed in-flight settings: one
# Python model (bench/pace_backend.py: 5 ms + 20 us x n, one batch at a
# time) behind a packed grpc queue (batches of up to 64, 2 ms), closed-loop
# unary callers. Each setting gets a fresh batchgate; the model's limit is
# 64 / 6.28 ms = 10.2k items/s. Prints one `bench --json` line per run.
#
#   bench/pace.sh                       # CALLERS="64 256" DUR=8s
#   RATES="2550 5100 7650 9700" CALLERS= bench/pace.sh   # open loop (25-95% of the limit)
# Needs a Python with the SDK installed (PYTHON=..., default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bin=${BIN:-target/release/batchgate}
py=${PYTHON:-python3}
DUR=${DUR:-8s}
WARM=${WARM:-2s}
CALLERS=${CALLERS-64 256}
RATES=${RATES:-}
SETTINGS=${SETTINGS:-in-flight-1 in-flight-2 in-flight-4 paced}
work=$(mktemp -d)
"$py" bench/pace_backend.py --port 7310 >"$work/backend.log" 2>&1 &
pids+=($!)
wait_port 7310
# A point: "c=N" (N closed-loop callers) or "r=R" (R items/s open loop,
# up to 1,024 in flight).
points=()
for c in $CALLERS; do points+=("c=$c"); done
for r in $RATES; do points+=("r=$r"); done
for point in "${points[@]}"; do
  case $point in
    c=*) load=(-c "${point#c=}") ;;
    r=*) load=(-c 1024 --rate "${point#r=}") ;;
  esac
  for setting in $SETTINGS; do
    case $setting in
      in-flight-*) extra="max_in_flight_batches = ${setting#in-flight-}" ;;
      paced) extra=$'max_in_flight_batches = 1\npace = "backend"' ;;
      # Nothing declared: the queue learns the parallelism (up to 4).
      paced-learned) extra=$'max_in_flight_batches = 4\npace = "backend"' ;;
      target) extra=$'max_in_flight_batches = 1\nmode = "target"\ntarget_latency = "20ms"' ;;
      target-paced) extra=$'max_in_flight_batches = 1\nmode = "target"\ntarget_latency = "20ms"\npace = "backend"' ;;
    esac
    cat >"$work/q.toml" <<TOML
[server]
grpc_addr = "127.0.0.1:50110"
metrics_addr = "127.0.0.1:9510"

[queues.model]
max_batch_size = 64
max_delay = "2ms"
$extra
handler = { kind = "grpc", endpoints = ["http://127.0.0.1:7310"], encoding = "packed", max_in_flight = 4 }
TOML
    "$bin" serve --config "$work/q.toml" >"$work/server.log" 2>&1 &
    pids+=($!)
    wait_port 50110
    "$bin" bench --addr 127.0.0.1:50110 -q model "${load[@]}" --duration "$DUR" --warmup "$WARM" \
      --json --label "$setting $point" 2>/dev/null
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
  done
done
rm -rf "$work"
