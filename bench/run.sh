#!/usr/bin/env bash
# The batchgate benchmark suite: every figure next to a baseline measured in
# the same run on the same machine. Writes bench/results/<time>/ with
# results.jsonl (one `batchgate bench --json` line per point), extra.json,
# chart.svg and RESULTS.md; copy the latter two to bench/ to publish them.
#
#   bench/run.sh            # full run (~15 minutes on 2 cores)
#   DUR=2s bench/run.sh     # shorter points
#   PEER=0 bench/run.sh     # skip the MLServer peer (needs PyPI)
#   REPS=5 bench/run.sh     # more alternating repetitions of each
#                           # limit/batchgate pair (default 3; the report
#                           # quotes the median of each point)
#
# Series:
#   1. the limit: a bare tonic echo of the same API (batchgate bare-echo)
#   2. batchgate + echo handler (batch 64, 2 ms), unary and stream
#   3. the sim handler (5 ms + 20 us/item): batch 1 vs 64, same concurrency
#   4. queue depth: RSS per queued 16-byte item, drain rate, 1k..1M items
#   2b. the same echo as a remote gRPC backend (the cost of the hop)
#   5. h2load, unary: batchgate Submit vs Seldon MLServer ModelInfer
#      (adaptive batching 64 / 2 ms, echo model), same concurrency
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
DUR=${DUR:-5s}
WARM=${WARM:-1s}
PEER=${PEER:-1}
REPS=${REPS:-3}
out="bench/results/$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
jsonl="$out/results.jsonl"
extra="$out/extra.json"
echo '{}' >"$extra"
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

note() { python3 - "$extra" "$1" "$2" <<'PY'
import json, sys
path, key, value = sys.argv[1:]
data = json.load(open(path))
try:
    data[key] = json.loads(value)
except json.JSONDecodeError:
    data[key] = value
json.dump(data, open(path, "w"), indent=1)
PY
}

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

cargo build --release --quiet
B=target/release/batchgate
"$B" --version

# Machine description.
note machine "\"$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\""
note date "\"$(date -u +%Y-%m-%dT%H:%MZ)\""
note command "\"DUR=$DUR bench/run.sh\""

point() { # label, then bench flags
  local label=$1; shift
  "$B" bench --quiet --json --duration "$DUR" --warmup "$WARM" --label "$label" "$@" | tee -a "$jsonl" \
    | python3 -c 'import json,sys
r = json.load(sys.stdin)
l = r["latency_us"]
print("%-34s %12.0f/s  p50 %7d us  p99 %7d us  errors %d" % (r["label"], r["items_per_sec"], l["p50"], l["p99"], sum(r["errors"].values())))'
}

# 1 + 2: the limit and batchgate's echo, side by side at each point.
"$B" bare-echo --addr 127.0.0.1:50152 2>/dev/null &
pids+=($!)
"$B" serve --config bench/batchgate-bench.toml --log-format compact 2>"$out/server.log" &
pids+=($!)
server_pid=$!
wait_port 50152 && wait_port 50151
# Each pair runs REPS times, alternating, so slow phases of a noisy machine
# hit both sides; the report takes the median of each point.
note reps "$REPS"
for rep in $(seq 1 "$REPS"); do
  for c in 1 16 64 256; do
    conns=$(( c < 4 ? c : 4 ))
    point "limit-unary/c=$c" --addr http://127.0.0.1:50152 --mode unary -c "$c" --connections "$conns"
    point "batchgate-unary/c=$c" --addr http://127.0.0.1:50151 --mode unary -c "$c" --connections "$conns" -q echo
  done
  # The same 64 calls in flight from 16 connections instead of 4.
  point "limit-unary/c=64,k=16" --addr http://127.0.0.1:50152 --mode unary -c 64 --connections 16
  point "batchgate-unary/c=64,k=16" --addr http://127.0.0.1:50151 --mode unary -c 64 --connections 16 -q echo
  for w in 64 1024 4096; do
    point "limit-stream/w=$w" --addr http://127.0.0.1:50152 --mode stream --streams 2 --connections 2 -c "$w"
    point "batchgate-stream/w=$w" --addr http://127.0.0.1:50151 --mode stream --streams 2 --connections 2 -c "$w" -q echo
  done
done

# The cost of a remote gRPC backend hop: the same echo behind the Backend API.
point "batchgate-remote-unary/c=64" --addr http://127.0.0.1:50151 --mode unary -c 64 --connections 4 -q remote
point "batchgate-remote-stream/w=1024" --addr http://127.0.0.1:50151 --mode stream --streams 2 --connections 2 -c 1024 -q remote

# Added latency at half of the maximum unary load (open loop, so latency
# counts from each item's intended send time).
max_unary=$(python3 -c "import json; print(max(json.loads(l)['items_per_sec'] for l in open('$jsonl') if json.loads(l)['label'].startswith('batchgate-unary/')))")
half=$(python3 -c "print(int($max_unary/2))")
for rep in $(seq 1 "$REPS"); do
  point "limit-open/half" --addr http://127.0.0.1:50152 --mode unary -c 256 --connections 4 --rate "$half"
  point "batchgate-open/half" --addr http://127.0.0.1:50151 --mode unary -c 256 --connections 4 --rate "$half" -q echo
done
note half_load_rate "$half"

# 3: the value of batching.
point "sim-batch1/c=256" --addr http://127.0.0.1:50151 --mode unary -c 256 --connections 4 -q sim1
point "sim-batch64/c=256" --addr http://127.0.0.1:50151 --mode unary -c 256 --connections 4 -q sim64

# 5a: batchgate's unary Submit under h2load (same tool as for the peer).
h2() { # url path body -> items/s
  h2load -n "${H2N:-200000}" -c 4 -m 16 -t 1 -d "$3" -H 'content-type: application/grpc' -H 'te: trailers' \
    "$1$2" 2>&1 | awk '/^finished in/ {gsub(",",""); for(i=1;i<=NF;i++) if($i ~ /req\/s/) print $(i-1)}'
}
printf '\x00\x00\x00\x00\x18\x0a\x04echo\x12\x10xxxxxxxxxxxxxxxx' >"$out/submit.bin"
if command -v h2load >/dev/null; then
  note h2load_batchgate "$(h2 http://127.0.0.1:50151 /batchgate.v1.Batcher/Submit "$out/submit.bin")"
  note h2load_limit "$(h2 http://127.0.0.1:50152 /batchgate.v1.Batcher/Submit "$out/submit.bin")"
fi
kill "$server_pid" 2>/dev/null || true

# 4: queue depth. A fresh server per size; the queue is paused, filled over
# 4 streams, measured, then resumed and drained.
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
depth() { "$B" ctl --addr http://127.0.0.1:50161 describe deep --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["depth"])'; }
for n in 1000 100000 1000000; do
  "$B" serve --config bench/batchgate-depth.toml 2>>"$out/server.log" &
  srv=$!
  pids+=($srv)
  wait_port 50161
  "$B" bench --quiet --addr http://127.0.0.1:50161 -q deep --mode unary -c 8 --duration 1s --warmup 0s >/dev/null
  "$B" ctl --addr http://127.0.0.1:50161 pause deep >/dev/null
  before=$(rss_kb "$srv")
  "$B" bench --quiet --json --addr http://127.0.0.1:50161 -q deep --mode stream --streams 4 --connections 4 \
    -c $(( n / 4 )) --items "$n" --duration 10m --warmup 0s --label "depth/n=$n" >"$out/depth-$n.json" &
  loader=$!
  until [ "$(depth)" -ge "$n" ]; do sleep 0.2; done
  after=$(rss_kb "$srv")
  t0=$(date +%s.%N)
  "$B" ctl --addr http://127.0.0.1:50161 resume deep >/dev/null
  wait "$loader"
  t1=$(date +%s.%N)
  note "depth_$n" "{\"rss_before_kb\": $before, \"rss_full_kb\": $after, \"bytes_per_item\": $(python3 -c "print(round(($after-$before)*1024/$n,1))"), \"drain_seconds\": $(python3 -c "print(round($t1-$t0,4))"), \"drain_items_per_sec\": $(python3 -c "print(round($n/($t1-$t0)))")}"
  kill "$srv" 2>/dev/null || true
  wait "$srv" 2>/dev/null || true
done

# 5b: the peer, Seldon MLServer with adaptive batching, driven by h2load.
if [ "$PEER" = 1 ] && command -v h2load >/dev/null; then
  venv="${MLSERVER_VENV:-$root/bench/results/.mlserver-venv}"
  if [ ! -x "$venv/bin/mlserver" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'mlserver>=1.7,<1.8' 'uvloop<0.22'
  fi
  (cd bench/mlserver && "$venv/bin/python" body.py >"$root/$out/infer.bin")
  (cd bench/mlserver && exec "$venv/bin/mlserver" start . >"$root/$out/mlserver.log" 2>&1) &
  pids+=($!)
  for _ in $(seq 1 300); do curl -fsS http://127.0.0.1:18080/v2/models/echo/ready >/dev/null 2>&1 && break; sleep 0.2; done
  note mlserver_version "\"$("$venv/bin/pip" show mlserver | awk '/^Version/ {print $2}')\""
  note h2load_mlserver "$(H2N=${H2N_PEER:-20000} h2 http://127.0.0.1:18081 /inference.GRPCInferenceService/ModelInfer "$out/infer.bin")"
fi

"$B" bench-chart --input "$jsonl" --output "$out/chart.svg"
python3 bench/report.py "$out" >"$out/RESULTS.md"
echo "report: $out/RESULTS.md"
