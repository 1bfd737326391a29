#!/usr/bin/env bash
# The Open Inference Protocol measured with other people's tools, one run,
# single-row FP32[4] requests:
#   1. MLServer straight (`double_batched`, its adaptive batching:
#      max_batch_size 64, max_batch_time 2 ms) against MLServer through
#      batchgate's v2 front door (`double`, its batching off; the kserve
#      kind batching 64 / 2 ms), at 16, 64 and 256 in flight:
#      - perf_analyzer (tritonclient[all]==2.41.0, Triton's own tool),
#        throughput and p99 (--percentile=99); it cannot call MLServer
#        straight ("failed to get model config": MLServer has no Triton
#        ModelConfig), so only the batchgate side has its figures;
#      - h2load (nghttp2) sending the same gRPC ModelInfer bytes to both,
#        4 connections: throughput and mean latency (h2load gives no p99).
#   2. h2load, the same request to batchgate's echo queue three
#      ways: REST with JSON tensors, REST with the binary tensor extension
#      (both HTTP/1.1, 64 connections), and gRPC ModelInfer (HTTP/2, 4
#      connections x 16 streams); one tool for all three so the ratio is
#      the protocol's.
# Needs perf_analyzer's venv (PA_VENV, see .ci/perf-analyzer.sh for the
# libraries) and h2load (apt-get install nghttp2-client).
#
#   PA_VENV=/path/venv bench/oip_pa.sh     # about 3 minutes
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
OUT=${OUT:-bench/results/oip-pa-$(date -u +%Y%m%d-%H%M%S)}
DUR=${DUR:-5}
mkdir -p "$OUT"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin batchgate || exit 1
  BIN=target/release/batchgate
fi
. bench/lib.sh
pa="${PA_VENV:?PA_VENV: a venv with tritonclient[all]==2.41.0 and nvidia-cuda-runtime-cu12}"
LD_LIBRARY_PATH=$("$pa/bin/python" -c 'import nvidia.cuda_runtime as m, os; print(os.path.join(list(m.__path__)[0], "lib"))')
export LD_LIBRARY_PATH
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
http_addr = "127.0.0.1:8293"

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

pa_run() { # LABEL URL MODEL C
  "$pa/bin/perf_analyzer" -u "$2" -i grpc -m "$3" --concurrency-range "$4" \
    --percentile=99 --stability-percentage 100 --max-trials 4 --measurement-interval $((DUR * 1000)) -f "$OUT/$1-c$4.csv" >"$OUT/$1-c$4.txt" 2>&1
  sleep 1
}
for c in 16 64 256; do
  pa_run batchgate 127.0.0.1:50293 double $c
done

# The bodies of one FP32[4] row.
"$venv/bin/python" - "$OUT" <<'PY'
import json, struct, sys
from mlserver.grpc import dataplane_pb2 as pb
out = sys.argv[1]
row = [1.5, -2.0, 3.25, 4.0]
raw = struct.pack("<4f", *row)
open(f"{out}/body.json", "w").write(json.dumps(
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": row}]}))
header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                 "parameters": {"binary_data_size": 16}}],
                     "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
open(f"{out}/body.bin", "wb").write(header + raw)
open(f"{out}/header-length", "w").write(str(len(header)))
for model in ("echo", "double", "double_batched"):
    r = pb.ModelInferRequest(model_name=model)
    t = r.inputs.add(); t.name = "x"; t.datatype = "FP32"; t.shape.extend([1, 4])
    r.raw_input_contents.append(raw)
    msg = r.SerializeToString()
    open(f"{out}/{model}.grpc", "wb").write(b"\0" + struct.pack(">I", len(msg)) + msg)
PY
h2() { # LABEL ARGS...
  local label=$1; shift
  h2load -D "$DUR" --warm-up-time 1 "$@" >"$OUT/$label.txt" 2>&1
  sleep 1
}
h2 rest-json --h1 -c 64 -m 1 -d "$OUT/body.json" -H 'content-type: application/json' \
  http://127.0.0.1:8293/v2/models/echo/infer
h2 rest-binary --h1 -c 64 -m 1 -d "$OUT/body.bin" -H 'content-type: application/octet-stream' \
  -H "inference-header-content-length: $(cat "$OUT/header-length")" http://127.0.0.1:8293/v2/models/echo/infer
grpc=(-H 'content-type: application/grpc' -H 'te: trailers')
h2 grpc -c 4 -m 16 -d "$OUT/echo.grpc" "${grpc[@]}" \
  http://127.0.0.1:50293/inference.GRPCInferenceService/ModelInfer
for c in 16 64 256; do
  h2 h2-mlserver-c$c -c 4 -m $((c / 4)) -d "$OUT/double_batched.grpc" "${grpc[@]}" \
    http://127.0.0.1:18091/inference.GRPCInferenceService/ModelInfer
  h2 h2-batchgate-c$c -c 4 -m $((c / 4)) -d "$OUT/double.grpc" "${grpc[@]}" \
    http://127.0.0.1:50293/inference.GRPCInferenceService/ModelInfer
done
# h2load counts HTTP 200s; a gRPC error is a 200 too, so the queues'
# own counts of failed items are shown.
curl -s http://127.0.0.1:9693/metrics | grep -E '^batchgate_items_total.*outcome="(error|failed|rejected)' >"$OUT/errors.txt" || true

python3 - "$OUT" <<'PY' | tee "$OUT/OIP-PA.md"
import csv, re, sys
out = sys.argv[1]
def pa(label, c):
    row = next(csv.DictReader(open(f"{out}/{label}-c{c}.csv")))
    return float(row["Inferences/Second"]), float(row["p99 latency"]) / 1000
def h2(label):
    text = open(f"{out}/{label}.txt").read()
    rps = float(re.search(r"finished in .*?, ([0-9.]+) req/s", text).group(1))
    ok = re.search(r"status codes: (\d+) 2xx", text).group(1)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", text).group(1)
    return rps, ok, mean
print("| in flight | h2load: MLServer adaptive req/s (mean) | via batchgate req/s (mean) | ratio | perf_analyzer via batchgate infer/s | p99 ms |")
print("|---|---|---|---|---|---|")
for c in (16, 64, 256):
    (a, _, am), (b, _, bm) = h2(f"h2-mlserver-c{c}"), h2(f"h2-batchgate-c{c}")
    p, pp = pa("batchgate", c)
    print(f"| {c} | {a:,.0f} ({am}) | {b:,.0f} ({bm}) | {b / a:.2f}x | {p:,.0f} | {pp:.1f} |")
print()
print("| path (h2load, 64 in flight, echo queue) | req/s | 2xx | vs gRPC |")
print("|---|---|---|---|")
g = h2("grpc")[0]
for label in ("grpc", "rest-binary", "rest-json"):
    rps, ok, _ = h2(label)
    print(f"| {label} | {rps:,.0f} | {ok} | {rps / g:.2f}x |")
PY
