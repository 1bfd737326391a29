#!/usr/bin/env bash
# A BYTES text model with long-tailed lengths, measured with perf_analyzer
# (tritonclient[all]==2.41.0), count-only batching against length-bucketed
# batching, one run, two rounds each, at 64 in flight. The model stands for
# a transformer that pads every row of a batch to the longest: the `sim`
# handler with `padded` cost, a batch taking 1 ms + PER_COST (400 ns) x longest text
# (bytes) x rows, one batch at a time. Each request is one text (BYTES
# [1]) of 16 to 4,096 bytes (Pareto, most short); an item's cost is its
# payload's bytes (`cost = "bytes"`).
#   count      max_batch_size 32, nothing else
#   buckets    the same, with cost_buckets = [64, 256, 1024]: a batch holds
#              texts of one length class
#
#   PA_VENV=/path/venv bench/oip_text.sh     # about 2 minutes
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/oip-text-$(date -u +%Y%m%d-%H%M%S)}
DUR=${DUR:-5}
PER_COST=${PER_COST:-400ns}
mkdir -p "$OUT"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin batchgate || exit 1
  BIN=target/release/batchgate
fi
. bench/lib.sh
pa="${PA_VENV:?PA_VENV: a venv with tritonclient[all]==2.41.0 and nvidia-cuda-runtime-cu12}"
LD_LIBRARY_PATH=$("$pa/bin/python" -c 'import nvidia.cuda_runtime as m, os; print(os.path.join(list(m.__path__)[0], "lib"))')
export LD_LIBRARY_PATH

queue() { # NAME EXTRA
  cat <<TOML
[queues.$1]
max_batch_size = 32
max_delay = "2ms"
max_in_flight_batches = 1
max_queue_items = 100000
cost = "bytes"
$2
v2 = { inputs = [{ name = "TEXT", datatype = "BYTES", shape = [1] }], outputs = [{ name = "TEXT_OUT", datatype = "BYTES", shape = [1] }] }
handler = { kind = "sim", base = "1ms", per_cost = "$PER_COST", padded = true }

TOML
}
{
  printf '[server]\ngrpc_addr = "127.0.0.1:50294"\nmetrics_addr = "127.0.0.1:9694"\n\n'
  queue count ""
  queue buckets "cost_buckets = [64, 256, 1024]"
} >"$OUT/text.toml"
"$BIN" serve --config "$OUT/text.toml" 2>"$OUT/server.log" & pids+=($!)
wait_port 50294 || exit 1

python3 - "$OUT/texts.json" <<'PY'
import json, random, sys
random.seed(11)
steps = []
for _ in range(512):
    n = min(4096, int(16 * random.paretovariate(1.1)))
    steps.append({"TEXT": {"content": ["x" * n], "shape": [1]}})
json.dump({"data": steps}, open(sys.argv[1], "w"))
PY
for round in 1 2; do
  for q in count buckets; do
    "$pa/bin/perf_analyzer" -u 127.0.0.1:50294 -i grpc -m $q --input-data "$OUT/texts.json" \
      --concurrency-range 64 --percentile=99 --stability-percentage 100 --max-trials 4 \
      --measurement-interval $((DUR * 1000)) -f "$OUT/$q-$round.csv" >"$OUT/$q-$round.txt" 2>&1
    sleep 1
  done
done
curl -s http://127.0.0.1:9694/metrics >"$OUT/metrics.txt"
python3 - "$OUT" <<'PY' | tee "$OUT/OIP-TEXT.md"
import csv, re, sys
out = sys.argv[1]
metrics = open(f"{out}/metrics.txt").read()
def m(name, q):
    hit = re.search(rf'^{name}{{queue="{q}"}} (\S+)', metrics, re.M)
    return float(hit.group(1)) if hit else float("nan")
print("| round | batching | texts/s | p99 ms | ratio |")
print("|---|---|---|---|---|")
for r in (1, 2):
    got = {}
    for q in ("count", "buckets"):
        row = next(csv.DictReader(open(f"{out}/{q}-{r}.csv")))
        got[q] = (float(row["Inferences/Second"]), float(row["p99 latency"]) / 1000)
    for q in ("count", "buckets"):
        ratio = got[q][0] / got["count"][0]
        print(f"| {r} | {q} | {got[q][0]:,.0f} | {got[q][1]:.1f} | {ratio:.2f}x |")
print()
for q in ("count", "buckets"):
    n, s = m("batchgate_batch_size_count", q), m("batchgate_batch_size_sum", q)
    print(f"{q}: mean batch {s / n:.1f} rows, padding ratio sum/count "
          f"{m('batchgate_batch_padding_ratio_sum', q) / max(1, m('batchgate_batch_padding_ratio_count', q)):.2f}")
PY
