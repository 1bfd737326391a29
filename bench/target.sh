#!/usr/bin/env bash
# Batching policies side by side under an open-loop load from 10% to 150%
# of capacity, with the sim handler (5 ms + 20 us/item, one batch at a
# time: one model instance). Policies: fixed (batch 64, 2 ms), fixed (batch
# 256, 20 ms), AIMD in the style of Clipper (comparison), and
# mode = "target" (20 ms) without and with shedding. Each point gets a fresh
# server; open loop over 4 StreamSubmit streams (each item its own caller;
# 2 cores cannot drive unary calls open loop at these rates without the
# generator's own lag dominating), latency from each item's intended
# send time; goodput = items answered OK within 20 ms per second.
#
#   bench/target.sh                 # DUR=3s, ~4 minutes
# Writes bench/results/target-<time>/{results.jsonl,TARGET.md,target.svg}.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release/batchgate}
DUR=${DUR:-3s}
WARM=${WARM:-1s}
LOADS=${LOADS:-10 30 50 70 90 110 120 150}
out="bench/results/target-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT
ready() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

sim='handler = { kind = "sim", base = "5ms", per_item = "20us" }'
declare -A policies=(
  [fixed-64]="max_batch_size = 64
max_delay = \"2ms\""
  [fixed-256]="max_batch_size = 256
max_delay = \"20ms\""
  [aimd]="mode = \"aimd\"
max_batch_size = 1024
target_latency = \"20ms\""
  [target]="mode = \"target\"
max_batch_size = 1024
target_latency = \"20ms\""
  [target-shed]="mode = \"target\"
max_batch_size = 1024
target_latency = \"20ms\"
shed = true"
)
# Capacity: the best fixed setting's, batches of 256 back to back.
capacity=$(python3 -c "print(round(256 / (0.005 + 256 * 0.00002)))")
echo "capacity (fixed 256, back to back): $capacity items/s" | tee "$out/capacity.txt"

for name in fixed-64 fixed-256 aimd target target-shed; do
  cat >"$out/$name.toml" <<TOML
[server]
grpc_addr = "127.0.0.1:50261"
metrics_addr = "127.0.0.1:0"
stream_window = 16384

[queues.q]
max_in_flight_batches = 1
max_queue_items = 1000000
${policies[$name]}
$sim
TOML
  for load in $LOADS; do
    rate=$((capacity * load / 100))
    "$bin" serve --config "$out/$name.toml" >"$out/server-$name.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do ready 50261 && break; sleep 0.05; done
    "$bin" bench --addr http://127.0.0.1:50261 -q q --mode stream --streams 4 --rate "$rate" -c 16384 \
      --connections 4 --duration "$DUR" --warmup "$WARM" --within 20ms \
      --label "$name load=$load" --json --quiet >>"$out/results.jsonl" || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
    echo "$name $load% ($rate/s) done"
  done
done
python3 bench/target_report.py "$out" "$capacity"
echo "results in $out"
