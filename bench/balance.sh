#!/usr/bin/env bash
# Spreading batches over replicas of unequal speed: three gRPC echo
# backends (`batchgate bare-echo --batch-delay`), all equal (2 ms a batch)
# or one 10x slower (20 ms), behind one remote queue each; Submit calls
# closed loop (C in flight). Each batchgate binary in BINS serves the same
# backends in turn, REPS times, so their figures come from the same run.
#
#   bench/balance.sh                                # this tree's binary only
#   BINS="/tmp/base/batchgate target/release/batchgate" bench/balance.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/balance-$(date -u +%Y%m%d-%H%M%S)}
DUR=${DUR:-10s}
C=${C:-128}
REPS=${REPS:-3}
FAST=${FAST:-2ms}
SLOW=${SLOW:-20ms}
MAX_IN_FLIGHT=${MAX_IN_FLIGHT:-4}
# SERIAL=1: each backend runs one batch at a time (as a GPU does).
SERIAL=${SERIAL:+--serial}
# POLICY: more queue fields, e.g. $'pace = "backend"\nmax_in_flight_batches = 3'.
POLICY=${POLICY:-}
mkdir -p "$OUT"
cargo build --release --quiet --bin batchgate || exit 1
BINS=${BINS:-target/release/batchgate}
ECHO=target/release/batchgate
. bench/lib.sh

# Fast backends on 50301-50303, the slow one on 50304.
for port in 50301 50302 50303; do
  "$ECHO" bare-echo --addr "127.0.0.1:$port" --batch-delay "$FAST" $SERIAL 2>>"$OUT/backends.log" & pids+=($!)
done
"$ECHO" bare-echo --addr 127.0.0.1:50304 --batch-delay "$SLOW" $SERIAL 2>>"$OUT/backends.log" & pids+=($!)
for port in 50301 50302 50303 50304; do wait_port $port || exit 1; done

queue() { # name endpoints...
  local name=$1; shift
  local list=""
  for p in "$@"; do list="$list\"http://127.0.0.1:$p\", "; done
  printf '[queues.%s]\nmax_batch_size = 16\nmax_delay = "1ms"\nmax_queue_items = 1000000\n%s\nhandler = { kind = "grpc", endpoints = [%s], max_in_flight = %s }\n' "$name" "$POLICY" "${list%, }" "$MAX_IN_FLIGHT"
}
{
  printf '[server]\ngrpc_addr = "127.0.0.1:50300"\nmetrics_addr = "127.0.0.1:9600"\n'
  queue equal 50301 50302 50303
  queue slow 50301 50302 50304
} >"$OUT/balance.toml"

: >"$OUT/balance.jsonl"; : >"$OUT/calls.txt"
for rep in $(seq 1 "$REPS"); do
  for bin in $BINS; do
    "$bin" serve --config "$OUT/balance.toml" 2>>"$OUT/server.log" & server=$!
    wait_port 50300 || exit 1
    for q in equal slow; do
      "$ECHO" bench --quiet --json --duration "$DUR" --warmup 2s --addr http://127.0.0.1:50300 \
        -q "$q" -c "$C" --connections 4 --label "$bin|$q|$rep" >>"$OUT/balance.jsonl" || exit 1
    done
    python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:9600/metrics").read().decode())' \
      | sed -n "s|^batchgate_backend_calls_total{\(.*\)} \(.*\)|$bin $rep \1 \2|p" >>"$OUT/calls.txt"
    kill "$server"; wait "$server" 2>/dev/null
  done
done

python3 - "$OUT/balance.jsonl" "$BINS" "$OUT/calls.txt" <<'PY'
import json, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bins = sys.argv[2].split()
# The slow queue's batches answered by its slow replica (warm-up included).
on_slow = {}
for line in open(sys.argv[3]):
    b, rep, labels, n = line.split()
    if 'queue="slow"' in labels and 'outcome="ok"' in labels:
        total, slow = on_slow.get(b, (0.0, 0.0))
        on_slow[b] = (total + float(n), slow + float(n) * (":50304" in labels))
def med(b, q, key):
    vals = [r for r in rows if r["label"].startswith(f"{b}|{q}|")]
    if key == "p99":
        return statistics.median(r["latency_us"]["p99"] / 1000 for r in vals)
    return statistics.median(r["items_per_sec"] for r in vals)
print("| binary | replicas | items/s | p99 |")
print("|---|---|---|---|")
for b in bins:
    for q in ("equal", "slow"):
        print(f"| {b} | {q} | {med(b, q, 'ips'):,.0f} | {med(b, q, 'p99'):.2f} ms |")
if len(bins) == 2:
    base, new = bins
    for q in ("equal", "slow"):
        print(f"{q}: items/s {med(new, q, 'ips') / med(base, q, 'ips'):.2f}x, "
              f"p99 {med(new, q, 'p99') / med(base, q, 'p99'):.2f}x (second binary over first; medians of the runs)")
for b, (total, slow) in on_slow.items():
    print(f"{b}: {slow:,.0f} of the slow queue's {total:,.0f} batches on the slow replica ({100 * slow / total:.2f}%)")
PY
