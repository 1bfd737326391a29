#!/usr/bin/env bash
# Cost-aware batching: a model that pays for the padded shape of a batch
# (sim: 1 ms + 2 us x longest item x items, one batch at a time) fed token
# counts with a long tail (lognormal, median 40, p99 400), open loop.
#   count     batches of up to 64 items, whatever they cost (count only)
#   budget    max_batch_cost = 4096, cost_model = "padded"
#   buckets   the same budget with cost_buckets (ratio-1.5 bounds to 512)
#   target    buckets with mode = "target" (50 ms), learning t(cost)
# For each setup a rate sweep (one run per rate) finds the highest offered
# rate served in full with p99 within 50 ms (its goodput at a 50 ms target);
# that run's /metrics delta gives the mean batch and the mean padding ratio
# (padded cost over summed cost).
#
#   bench/cost.sh        # rates 250..8000 step 250, DUR=3s, ~8 minutes
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/cost-$(date -u +%Y%m%d-%H%M%S)}
DUR=${DUR:-3s}
RATES_FROM=${RATES_FROM:-250} RATES_STEP=${RATES_STEP:-250} RATES_TO=${RATES_TO:-8000}
COST=${COST:-lognormal:40:400}
mkdir -p "$OUT"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin batchgate || exit 1
  BIN=target/release/batchgate
fi
. bench/lib.sh

queue() {
  printf '[queues.%s]\nmax_delay = "2ms"\nmax_in_flight_batches = 1\nmax_queue_items = 100000\n%s\n' "$1" "$2"
  printf 'handler = { kind = "sim", base = "1ms", per_item = "0s", per_cost = "2us", padded = true }\n\n'
}
budget='max_batch_size = 1024
max_batch_cost = 4096
cost_model = "padded"
oversize = "alone"'
buckets="$budget
cost_buckets = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]"
{
  printf '[server]\ngrpc_addr = "127.0.0.1:50291"\nmetrics_addr = "127.0.0.1:9691"\n\n'
  queue count 'max_batch_size = 64'
  queue budget "$budget"
  queue buckets "$buckets"
  queue target "$buckets
mode = \"target\"
target_latency = \"50ms\""
} >"$OUT/cost.toml"
"$BIN" serve --config "$OUT/cost.toml" 2>"$OUT/server.log" & pids+=($!)
wait_port 50291 || exit 1

bench() { "$BIN" bench --quiet --addr http://127.0.0.1:50291 --cost "$COST" -c 4096 --connections 4 \
  --warmup 1s --within 50ms "$@"; }
metrics() { curl -s http://127.0.0.1:9691/metrics; }
# One run per offered rate, each with a /metrics snapshot before and after;
# a setup stops after two points in a row past 50 ms p99.
# point SETUP RATE: one run; prints its p99 in microseconds.
point() {
  metrics >"$OUT/$1-$2-before.prom"
  bench -q "$1" --duration "$DUR" --rate "$2" --json --label "$1" >"$OUT/$1-$2.json"
  metrics >"$OUT/$1-$2-after.prom"
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["latency_us"]["p99"])' "$OUT/$1-$2.json"
  sleep 1
}
# Coarse steps until two points in a row miss 50 ms, then fifth steps
# from the last point that made it, so every setup's knee is found to
# RATES_STEP/5.
for setup in count budget buckets target; do
  over=0 good=0
  for rate in $(seq $RATES_FROM $RATES_STEP $RATES_TO); do
    p99=$(point "$setup" "$rate")
    echo "$setup $rate/s p99 ${p99} us" >&2
    if [ "$p99" -gt 50000 ]; then over=$((over + 1)); else over=0 good=$rate; fi
    [ "$over" -ge 2 ] && break
  done
  fine=$((RATES_STEP / 5))
  for rate in $(seq $((good + fine)) $fine $((good + RATES_STEP - fine))); do
    p99=$(point "$setup" "$rate")
    echo "$setup $rate/s p99 ${p99} us" >&2
    [ "$p99" -gt 50000 ] && break
  done
done
python3 - "$OUT" <<'PY' | tee "$OUT/COST.md"
import glob, json, re, sys
out = sys.argv[1]
def sample(path, name, queue):
    for line in open(path):
        if line.startswith(f'{name}{{queue="{queue}"}}'):
            return float(line.split()[-1])
    return 0.0
def delta(setup, rate, name):
    return (sample(f"{out}/{setup}-{rate}-after.prom", name, setup)
            - sample(f"{out}/{setup}-{rate}-before.prom", name, setup))
def best(setup):
    """The highest offered rate served in full (>= 95%, no errors) at p99 <= 50 ms."""
    ok = []
    for path in glob.glob(f"{out}/{setup}-*.json"):
        rate = int(re.search(r"-(\d+)\.json$", path).group(1))
        r = json.load(open(path))
        if not r["errors"] and r["latency_us"]["p99"] <= 50_000 and r["items_per_sec"] >= 0.95 * rate:
            ok.append((rate, r))
    return max(ok, key=lambda x: x[0], default=(None, None))
print("| setup | highest rate with p99 <= 50 ms | goodput (answered within 50 ms) | vs count | p50 / p99 | mean batch | mean padding ratio |")
print("|---|---|---|---|---|---|---|")
base = None
for setup in ["count", "budget", "buckets", "target"]:
    rate, r = best(setup)
    if r is None:
        print(f"| {setup} | none | | | | | |")
        continue
    n = delta(setup, rate, "batchgate_batch_padding_ratio_count")
    ratio = delta(setup, rate, "batchgate_batch_padding_ratio_sum") / n if n else float("nan")
    batches = delta(setup, rate, "batchgate_batch_size_count")
    mean_batch = delta(setup, rate, "batchgate_batch_size_sum") / batches if batches else float("nan")
    good = r["within"]["per_sec"]
    base = base or good
    lat = r["latency_us"]
    print(f"| {setup} | {rate:,}/s | {good:,.0f}/s | {good / base:.2f}x "
          f"| {lat['p50']/1000:.1f} / {lat['p99']/1000:.1f} ms | {mean_batch:.1f} | {ratio:.2f} |")
PY
