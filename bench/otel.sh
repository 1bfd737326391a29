#!/usr/bin/env bash
# The cost of OpenTelemetry traces: the same server with traces off and on
# (exporting over OTLP/gRPC to crates/bench/examples/otlp_sink.rs, which only counts),
# alternating, in one run. Unary Submit (a span per call, a batch span with
# a link per call) and StreamSubmit (a span per stream, a batch span per
# batch), echo handler, batches of 64, max_delay 2 ms.
#
#   bench/otel.sh                       # DUR=4s REPS=3
#   SERVER_CPUS=0-7 CLIENT_CPUS=8-13 SINK_CPUS=14-15 bench/otel.sh  # 16 cores
#
# Writes $OUT/otel.jsonl (one `batchgate bench --json` line per point, with
# the server's CPU per item) and prints a table with on/off ratios.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/otel-$(date -u +%Y%m%d-%H%M%S)}
DUR=${DUR:-4s}
REPS=${REPS:-3}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
mkdir -p "$OUT"
J=$OUT/otel.jsonl; : >"$J"
# BIN and SINK: prebuilt binaries (e.g. on a machine without cargo).
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin batchgate --example otlp_sink || exit 1
  BIN=target/release/batchgate
fi
SINK=${SINK:-target/release/examples/otlp_sink}
SINK_CPUS=${SINK_CPUS:-0-$(( $(nproc) - 1 ))}
. bench/lib.sh
hz=$(getconf CLK_TCK)

config() {
  printf '[server]\ngrpc_addr = "127.0.0.1:%s"\nmetrics_addr = "127.0.0.1:%s"\n' "$1" "$2"
  printf '[queues.echo]\nmax_batch_size = 64\nmax_delay = "2ms"\nmax_queue_items = 1000000\nhandler = { kind = "echo" }\n'
}
config 50171 9571 >"$OUT/off.toml"
config 50172 9572 >"$OUT/on.toml"

taskset -c "$SINK_CPUS" "$SINK" 127.0.0.1:50179 >"$OUT/spans.txt" & pids+=($!)
wait_port 50179 || exit 1
taskset -c "$SERVER_CPUS" env -u OTEL_EXPORTER_OTLP_ENDPOINT "$BIN" serve --config "$OUT/off.toml" 2>"$OUT/off.log" & off=$!; pids+=($off)
taskset -c "$SERVER_CPUS" env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:50179 "$BIN" serve --config "$OUT/on.toml" 2>"$OUT/on.log" & on=$!; pids+=($on)
wait_port 50171 && wait_port 50172 || exit 1

point() {
  local label=$1 pid=$2 port=$3; shift 3
  local t0 line
  t0=$(ticks "$pid")
  line=$(taskset -c "$CLIENT_CPUS" "$BIN" bench --quiet --json --duration "$DUR" --warmup 1s --label "$label" --addr "http://127.0.0.1:$port" -q echo "$@")
  python3 - "$line" "$(( $(ticks "$pid") - t0 ))" "$hz" "$DUR" <<'PY' | tee -a "$J" >/dev/null
import json, sys
line, ticks, hz, dur = sys.argv[1:]
r = json.loads(line)
items = r["items_per_sec"] * (float(dur.rstrip("s")) + 1.0)
r["server_ns_per_item"] = int(ticks) / int(hz) * 1e9 / max(items, 1)
print(json.dumps(r))
PY
}

for rep in $(seq 1 "$REPS"); do
  echo "== rep $rep"
  for t in off on; do
    pid=$off; port=50171; [ $t = on ] && { pid=$on; port=50172; }
    point "unary c=64/traces $t" $pid $port -c 64 --connections 4
    point "stream s=2/traces $t" $pid $port --mode stream --streams 2 --connections 2 -c 1024
    point "lone unary/traces $t" $pid $port -c 1 --connections 1
  done
done
sleep 6  # the span processor exports every 5 s
echo "spans received by the sink: $(tail -1 "$OUT/spans.txt" 2>/dev/null || echo 0)"
python3 - "$J" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r)
print("| point | traces off | traces on | on/off | p50 off/on (us) | p99 off/on (us) | server ns/item off/on |")
print("|---|---|---|---|---|---|---|")
for what in ["unary c=64", "stream s=2", "lone unary"]:
    off, on = by[f"{what}/traces off"], by[f"{what}/traces on"]
    med = lambda rs, f: statistics.median(f(r) for r in rs)
    ips = lambda r: r["items_per_sec"]
    a, b = med(off, ips), med(on, ips)
    p = lambda rs, q: med(rs, lambda r: r["latency_us"][q])
    ns = lambda rs: med(rs, lambda r: r["server_ns_per_item"])
    print(f"| {what} | {a:,.0f}/s | {b:,.0f}/s | {b/a:.2f} | {p(off,'p50'):.0f} / {p(on,'p50'):.0f} | {p(off,'p99'):.0f} / {p(on,'p99'):.0f} | {ns(off):,.0f} / {ns(on):,.0f} |")
PY
