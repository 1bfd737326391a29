#!/usr/bin/env bash
# The Open Inference Protocol, single-row requests of 4 FP32 (16 bytes)
# from the built-in load generator in v2 mode (`bench --mode v2`, one
# ModelInfer per row), closed loop at 64 and 256 in flight:
#   mlserver    straight to MLServer's `double_batched` (y = 2x, its own
#               adaptive batching: max_batch_size 64, max_batch_time 2 ms)
#   batchgate   through batchgate's v2 front door to MLServer's `double`
#               (its batching off), the kserve kind batching 64 / 2 ms
#   v2 / v1     batchgate's front door against its own batchgate.v1 Submit
#               on the same built-in echo queue
# One run each, same machine; ratios in bench/OIP.md come from this run.
#
#   bench/oip.sh        # DUR=5s, about 2 minutes plus the MLServer venv
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
OUT=${OUT:-bench/results/oip-$(date -u +%Y%m%d-%H%M%S)}
DUR=${DUR:-5s}
mkdir -p "$OUT"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin batchgate || exit 1
  BIN=target/release/batchgate
fi
. bench/lib.sh
venv="${MLSERVER_VENV:-$root/bench/results/.mlserver-venv}"
if [ ! -x "$venv/bin/mlserver" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'mlserver>=1.7,<1.8' 'uvloop<0.22'
fi
(cd tests/foreign/oip/mlserver && exec "$venv/bin/mlserver" start . >"$root/$OUT/mlserver.log" 2>&1) & pids+=($!)

cat >"$OUT/oip.toml" <<'TOML'
[server]
grpc_addr = "127.0.0.1:50293"
metrics_addr = "127.0.0.1:9693"

[queues.double]
max_batch_size = 64
max_delay = "2ms"
max_in_flight_batches = 4
v2 = { inputs = [{ name = "x", datatype = "FP32", shape = [4] }], outputs = [{ name = "y", datatype = "FP32", shape = [4] }] }
handler = { kind = "kserve", endpoints = ["http://127.0.0.1:18091"], max_in_flight = 4 }

[queues.echo]
max_batch_size = 64
max_delay = "2ms"
v2 = { inputs = [{ name = "x", datatype = "FP32", shape = [4] }], outputs = [{ name = "y", datatype = "FP32", shape = [4] }] }
TOML
"$BIN" serve --config "$OUT/oip.toml" 2>"$OUT/server.log" & pids+=($!)
wait_port 50293 || exit 1
wait_port 18091 || exit 1

run() { # LABEL ADDR MODE QUEUE C
  "$BIN" bench --quiet --json --label "$1" --addr "$2" --mode "$3" -q "$4" -c "$5" \
    --connections 4 --payload-size 16 --duration "$DUR" --warmup 1s >"$OUT/$1-c$5.json"
  sleep 1
}
for c in 64 256; do
  run mlserver http://127.0.0.1:18091 v2 double_batched $c
  run batchgate http://127.0.0.1:50293 v2 double $c
  run v2-echo http://127.0.0.1:50293 v2 echo $c
  run v1-echo http://127.0.0.1:50293 unary echo $c
done
python3 - "$OUT" <<'PY' | tee "$OUT/OIP.md"
import json, sys
out = sys.argv[1]
def r(label, c):
    return json.load(open(f"{out}/{label}-c{c}.json"))
def row(name, x, base=None):
    lat = x["latency_us"]
    ratio = f"{x['items_per_sec'] / base['items_per_sec']:.2f}x" if base else ""
    err = sum(x["errors"].values()) if x["errors"] else 0
    return (f"| {name} | {x['concurrency']} | {x['items_per_sec']:,.0f} | {ratio} "
            f"| {lat['p50']/1000:.1f} / {lat['p99']/1000:.1f} ms | {err} |")
print("| path | in flight | rows/s | ratio | p50 / p99 | errors |")
print("|---|---|---|---|---|---|")
for c in (64, 256):
    a = r("mlserver", c)
    print(row("v2 ModelInfer straight to MLServer (its adaptive batching)", a))
    print(row("through batchgate's v2 front door, kserve kind to MLServer (its batching off)", r("batchgate", c), a))
for c in (64, 256):
    v1 = r("v1-echo", c)
    print(row("batchgate.v1 Submit, echo queue", v1))
    print(row("v2 ModelInfer, same echo queue", r("v2-echo", c), v1))
PY
