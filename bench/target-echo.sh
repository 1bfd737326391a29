#!/usr/bin/env bash
# The closed-loop point of the target mode: 16 unary callers into an echo
# queue with the default policy (batch 64, 2 ms) and with mode = "target",
# next to the bare tonic echo; and a lone caller's latency in each, next to
# the bare echo's. Alternating runs, REPS each (default 3), medians.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/release/batchgate}
DUR=${DUR:-4s}
REPS=${REPS:-3}
out="bench/results/target-echo-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ready() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
cat >"$out/batchgate.toml" <<'TOML'
[server]
grpc_addr = "127.0.0.1:50361"
metrics_addr = "127.0.0.1:0"

[queues.fixed]

[queues.target]
mode = "target"
target_latency = "20ms"
TOML
"$bin" serve --config "$out/batchgate.toml" >"$out/server.log" 2>&1 &
pids+=($!)
"$bin" bare-echo --addr 127.0.0.1:50362 >"$out/bare.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do ready 50361 && ready 50362 && break; sleep 0.05; done
for rep in $(seq 1 "$REPS"); do
  for c in 16 1; do
    "$bin" bench --addr http://127.0.0.1:50362 --mode unary -c "$c" --duration "$DUR" --warmup 1s \
      --label "bare c=$c" --json --quiet >>"$out/results.jsonl"
    for q in fixed target; do
      "$bin" bench --addr http://127.0.0.1:50361 -q "$q" --mode unary -c "$c" --duration "$DUR" \
        --warmup 1s --label "$q c=$c" --json --quiet >>"$out/results.jsonl"
    done
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
from collections import defaultdict
out = sys.argv[1]
runs = defaultdict(list)
for line in open(f"{out}/results.jsonl"):
    r = json.loads(line)
    runs[r["label"]].append(r)
def med(label, key):
    return statistics.median(key(r) for r in runs[label])
ips = lambda r: r["items_per_sec"]
p50 = lambda r: r["latency_us"]["p50"]
p99 = lambda r: r["latency_us"]["p99"]
lines = ["| point | items/s | vs bare echo | p50 us | p99 us |", "| --- | ---: | ---: | ---: | ---: |"]
for c in (16, 1):
    bare = med(f"bare c={c}", ips)
    for name in ("bare", "fixed", "target"):
        label = f"{name} c={c}"
        lines.append(f"| {label} | {med(label, ips):,.0f} | {med(label, ips)/bare:.2f} | {med(label, p50):,.0f} | {med(label, p99):,.0f} |")
added = med("target c=1", p99) - med("bare c=1", p99)
lines.append("")
lines.append(f"A lone item in target mode: p99 {med('target c=1', p99):,.0f} us, {added:,.0f} us more than the bare echo's p99 (goal: handler time + 300 us).")
open(f"{out}/TARGET-ECHO.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "results in $out"
