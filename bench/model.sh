#!/usr/bin/env bash
# A real model behind batchgate against the same model in-process, same
# machine, same run: an ONNX Runtime MLP (examples/onnx/make_model.py,
# 64 float32 inputs) served by the Python SDK's backend helper in packed
# mode with one intra-op thread and one model run at a time (as in the
# in-process loop), two batches in flight to the backend so the next one is
# decoded while the model runs. 2 cores are shared by the load generator,
# batchgate and the backend. Then the Python per-batch overhead table
# (bench/python_backend.py).
#
#   bench/model.sh                  # HIDDEN=8192 DUR=5s (~3 ms per batch of 256 here)
#   HIDDEN=1024 bench/model.sh      # a lighter model: overheads weigh more
# Needs a release build (cargo build --release) and PyPI (a venv is made).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=${BIN:-target/release/batchgate}
DUR=${DUR:-5s}
HIDDEN=${HIDDEN:-8192}
out="bench/results/model-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
venv=${VENV:-$out/venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$root/python[test]"
fi
py="$venv/bin/python"
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ready() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 200); do ready "$1" && return 0; sleep 0.05; done; echo "port $1 not up" >&2; exit 1; }

"$py" -c "import sys; sys.path.insert(0, 'examples/onnx'); from make_model import build_mlp; build_mlp('$out/mlp.onnx', hidden=$HIDDEN)"
seconds=${DUR%s}

run_point() {  # name batch allowed mode concurrency streams
  local name=$1 batch=$2 allowed=$3 mode=$4 conc=$5 streams=$6
  "$py" bench/onnx_backend.py "$out/mlp.onnx" 50171 "$out/meter-$name.json" >"$out/backend-$name.log" 2>&1 &
  local backend=$!
  pids+=("$backend")
  cat >"$out/batchgate-$name.toml" <<TOML
[server]
grpc_addr = "127.0.0.1:50161"
metrics_addr = "127.0.0.1:0"

[queues.onnx]
max_batch_size = $batch
max_delay = "2ms"
max_in_flight_batches = 2
$allowed
handler = { kind = "grpc", endpoints = ["http://127.0.0.1:50171"], encoding = "packed", max_in_flight = 2 }
TOML
  "$bin" serve --config "$out/batchgate-$name.toml" >"$out/server-$name.log" 2>&1 &
  local server=$!
  pids+=("$server")
  wait_port 50171
  wait_port 50161
  sleep 1
  "$py" -c "import json,sys; print(open(sys.argv[1]).read())" "$out/meter-$name.json" >"$out/meter-$name.start"
  "$bin" bench --addr http://127.0.0.1:50161 -q onnx --mode "$mode" -c "$conc" --streams "$streams" \
    --payload-size 256 --duration "$DUR" --warmup 1s --label "$name" --json --quiet >>"$out/results.jsonl"
  cp "$out/meter-$name.json" "$out/meter-$name.end"
  kill "$server" "$backend" 2>/dev/null || true
  wait "$server" "$backend" 2>/dev/null || true
}

for b in 64 256; do
  "$py" bench/onnx_inprocess.py "$out/mlp.onnx" --batch "$b" --threads 1 --seconds "$seconds" \
    | sed "s/^{/{\"label\": \"inprocess-$b\", /" >>"$out/results.jsonl"
  run_point "stream-$b" "$b" "" stream $((b * 8)) 2
done
run_point "unary-256-allowed" 256 'allowed_batch_sizes = [1, 8, 32, 64, 128, 256]' unary 1024 1
run_point "unary-256-any" 256 '' unary 1024 1
"$py" bench/python_backend.py --json >"$out/python_backend.json"

"$py" - "$out" "$HIDDEN" <<'PY'
import json, sys
out, hidden = sys.argv[1], sys.argv[2]
rows = {}
for line in open(f"{out}/results.jsonl"):
    r = json.loads(line)
    rows[r["label"]] = r
def meter(name, seconds):
    a = json.load(open(f"{out}/meter-{name}.start")); b = json.load(open(f"{out}/meter-{name}.end"))
    span = b["at"] - a["at"]
    batches = b["batches"] - a["batches"]
    run = b["run_s"] - a["run_s"]
    return run / max(batches, 1) * 1e3, run / span
lines = [f"# A real model behind batchgate (ONNX Runtime MLP 64→{hidden}→16, CPU)", "",
         "| point | items/s | vs in-process, same batch size | p99 ms | model ms/batch | model busy |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
for b in (64, 256):
    base = rows[f"inprocess-{b}"]["items_per_sec"]
    lines.append(f"| model in-process, batch {b} | {base:,.0f} | 1.00 | | {rows[f'inprocess-{b}']['ms_per_batch']:.2f} | 1.00 |")
    s = rows[f"stream-{b}"]
    ms, busy = meter(f"stream-{b}", s["seconds"])
    lines.append(f"| through batchgate, streamed, batch {b} (mean batch {s['batch_size']['mean']:.0f}) | {s['items_per_sec']:,.0f} | {s['items_per_sec']/base:.2f} | {s['latency_us']['p99']/1e3:.1f} | {ms:.2f} | {busy:.2f} |")
stream = rows["stream-256"]["items_per_sec"]
for name in ("unary-256-allowed", "unary-256-any"):
    u = rows[name]
    ms, busy = meter(name, u["seconds"])
    lines.append(f"| {name}, 1024 callers (mean batch {u['batch_size']['mean']:.0f}) | {u['items_per_sec']:,.0f} | {u['items_per_sec']/rows['inprocess-256']['items_per_sec']:.2f} (vs streamed {u['items_per_sec']/stream:.2f}) | {u['latency_us']['p99']/1e3:.1f} | {ms:.2f} | {busy:.2f} |")
pb = json.load(open(f"{out}/python_backend.json"))
lines += ["", f"## Python backend overhead per batch ({pb['items']} x {pb['size']}-byte items, no-op model)", "",
          "| backend | CPU ms/batch | vs raw | gRPC round trip ms | vs raw |", "| --- | ---: | ---: | ---: | ---: |"]
for kind, r in pb["rows"].items():
    lines.append(f"| {kind} | {r['cpu_ms']:.3f} | {r['cpu_vs_raw']:.2f} | {r['call_ms']:.3f} | {r['call_vs_raw']:.2f} |")
open(f"{out}/MODEL.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "results in $out"
