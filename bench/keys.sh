#!/usr/bin/env bash
# Batch by key, fairness: a noisy tenant with 10x the calls in flight of a
# quiet one, into a saturated handler (sim: 2 ms + 20 us per item, batches
# of 64, one batch at a time: about 19.5k items/s), measured at once.
#   fifo      no keys: both share one FIFO (what the queue did before keys)
#   fair      batch_key per tenant, equal weights
#   weighted  batch_key per tenant, weights = { quiet = 3 }
# Prints per setup each tenant's items/s, share and latency.
#
#   bench/keys.sh              # DUR=6s
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/keys-$(date -u +%Y%m%d-%H%M%S)}
DUR=${DUR:-6s}
NOISY=${NOISY:-640}
QUIET=${QUIET:-64}
mkdir -p "$OUT"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin batchgate || exit 1
  BIN=target/release/batchgate
fi
. bench/lib.sh

queue() {
  printf '[queues.%s]\nmax_batch_size = 64\nmax_delay = "2ms"\nmax_in_flight_batches = 1\nmax_queue_items = 100000\n%s\nhandler = { kind = "sim", base = "2ms", per_item = "20us" }\n' "$1" "$2"
}
{
  printf '[server]\ngrpc_addr = "127.0.0.1:50191"\nmetrics_addr = "127.0.0.1:9591"\n'
  queue fifo ""
  queue fair ""
  queue weighted 'weights = { quiet = 3 }'
} >"$OUT/keys.toml"
"$BIN" serve --config "$OUT/keys.toml" 2>"$OUT/server.log" & pids+=($!)
wait_port 50191 || exit 1

run() {
  local setup=$1 key_noisy=$2 key_quiet=$3
  "$BIN" bench --quiet --json --duration "$DUR" --warmup 1s --addr http://127.0.0.1:50191 -q "$setup" \
    -c "$NOISY" --connections 4 --label "$setup/noisy" ${key_noisy:+--batch-key $key_noisy} >"$OUT/$setup-noisy.json" & a=$!
  "$BIN" bench --quiet --json --duration "$DUR" --warmup 1s --addr http://127.0.0.1:50191 -q "$setup" \
    -c "$QUIET" --connections 1 --label "$setup/quiet" ${key_quiet:+--batch-key $key_quiet} >"$OUT/$setup-quiet.json" & b=$!
  wait $a $b
}
run fifo "" ""
run fair noisy quiet
run weighted noisy quiet
cat "$OUT"/*-noisy.json "$OUT"/*-quiet.json >"$OUT/keys.jsonl"
python3 - "$OUT" "$NOISY" "$QUIET" <<'PY'
import json, sys
out, noisy_c, quiet_c = sys.argv[1:]
print(f"noisy: {noisy_c} calls in flight, quiet: {quiet_c}")
print("| setup | noisy items/s | quiet items/s | quiet share | quiet p50 / p99 | noisy p50 / p99 |")
print("|---|---|---|---|---|---|")
for setup in ["fifo", "fair", "weighted"]:
    n = json.load(open(f"{out}/{setup}-noisy.json"))
    q = json.load(open(f"{out}/{setup}-quiet.json"))
    share = q["items_per_sec"] / (q["items_per_sec"] + n["items_per_sec"])
    ms = lambda r, p: r["latency_us"][p] / 1000
    print(f"| {setup} | {n['items_per_sec']:,.0f} | {q['items_per_sec']:,.0f} | {share:.2f} | "
          f"{ms(q,'p50'):.1f} / {ms(q,'p99'):.1f} ms | {ms(n,'p50'):.1f} / {ms(n,'p99'):.1f} ms |")
PY
