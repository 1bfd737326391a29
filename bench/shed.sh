#!/usr/bin/env bash
# Target mode past capacity: do the items a shedding queue accepts meet the
# target? One model instance (sim 10 ms + 1 ms/item, one batch at a time),
# target 60 ms, shed = true; its capacity is batches of n_max = 20 (30 ms,
# half the target): about 667 items/s. 1,024 unary callers, open loop at
# 2x and 5x that rate. Prints one `bench --json` line per run: the
# accepted items' latency, their rate, the refusals (RESOURCE_EXHAUSTED)
# and the largest batch. BASE=path/to/other/batchgate runs the same points
# against it too, on the same machine in the same run.
#
#   bench/shed.sh                  # DUR=10s, about a minute
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bin=${BIN:-target/release/batchgate}
DUR=${DUR:-10s}
WARM=${WARM:-3s}
work=$(mktemp -d)
cat >"$work/shed.toml" <<'TOML'
[server]
grpc_addr = "127.0.0.1:50099"
metrics_addr = "127.0.0.1:9499"

[queues.shed]
mode = "target"
target_latency = "60ms"
shed = true
max_in_flight_batches = 1
max_batch_size = 1024
handler = { kind = "sim", base = "10ms", per_item = "1ms" }
TOML
capacity=667
for server in "$bin" ${BASE:+"$BASE"}; do
  for times in 2 5; do
    "$server" serve --config "$work/shed.toml" >"$work/server.log" 2>&1 &
    pids+=($!)
    wait_port 50099
    "$bin" bench --addr 127.0.0.1:50099 -q shed -c 1024 --rate $((capacity * times)) \
      --duration "$DUR" --warmup "$WARM" --json --label "$server ${times}x" 2>/dev/null
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
  done
done
rm -rf "$work"
