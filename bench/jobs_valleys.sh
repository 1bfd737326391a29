#!/usr/bin/env bash
# Jobs filling what online traffic leaves (bench/JOBS.md): the sim queue
# (5 ms + 20 us an item, batches of 64, 2 in flight) in mode = "target",
# its capacity measured closed loop, then online open-loop load at 0, 50
# and 90% of it, alone and with a job of JOB items on the same queue:
# online p99 with the job against alone, and the job's items/s against
# capacity - online rate.
#
#   bench/jobs_valleys.sh           # JOB=200000 DUR=10 REPS=3 SHARES="0 50 90"
#   TOP_UP=false JOB_IN_FLIGHT=64 SHARES=90 bench/jobs_valleys.sh
# Each share runs alone and with the job REPS times, one after the other;
# the medians are printed. TOP_UP is the queue's `top_up`, JOB_IN_FLIGHT
# its `jobs.max_in_flight_per_queue` (0: the default).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bin=${BIN:-target/release/batchgate}
JOB=${JOB:-200000}
DUR=${DUR:-10}
REPS=${REPS:-3}
work=$(mktemp -d)
cat >"$work/q.toml" <<TOML
[server]
grpc_addr = "127.0.0.1:50130"
metrics_addr = "127.0.0.1:9530"

[queues.sim]
max_batch_size = 64
max_delay = "5ms"
max_in_flight_batches = 2
mode = "target"
target_latency = "20ms"
max_queue_items = 100000
top_up = ${TOP_UP:-true}
handler = { kind = "sim", base = "5ms", per_item = "20us" }

[jobs]
path = "$work/jobs.sqlite3"
max_in_flight_per_queue = ${JOB_IN_FLIGHT:-0}
TOML
python3 - "$JOB" >"$work/items.jsonl" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print('{"custom_id": "k%d", "payload": "%s"}' % (i, "x" * 16))
PY
"$bin" serve --config "$work/q.toml" >"$work/server.log" 2>&1 &
pids+=($!)
wait_port 50130
b() { "$bin" bench --addr 127.0.0.1:50130 -q sim --payload-size 16 --warmup 1s --duration "${DUR}s" --json --quiet "$@" 2>/dev/null; }
field() { python3 -c "import sys,json; d=json.loads(sys.stdin.readline()); print($1)"; }
cap=$(b -c 512 | field "round(d['items_per_sec'])")
echo "capacity (512 closed-loop callers): $cap items/s"
succeeded() { "$bin" jobs --addr 127.0.0.1:50130 get "$1" | sed -n 's/.* succeeded=\([0-9]*\).*/\1/p'; }
median() { python3 -c "import sys,statistics; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
for share in ${SHARES:-0 50 90}; do
  rate=$(( cap * share / 100 ))
  alones=() withs=() jobs=()
  for rep in $(seq 1 "$REPS"); do
    if (( rate > 0 )); then
      alones+=("$(b -c 1024 --rate "$rate" | field "d['latency_us']['p99']/1000")")
    fi
    id=$("$bin" jobs --addr 127.0.0.1:50130 submit --queue sim "$work/items.jsonl" 2>/dev/null | tail -1)
    sleep 1
    s0=$(succeeded "$id"); t0=$(date +%s.%N)
    if (( rate > 0 )); then
      withs+=("$(b -c 1024 --rate "$rate" | field "d['latency_us']['p99']/1000")")
    else
      sleep "$((DUR + 1))"
    fi
    s1=$(succeeded "$id"); t1=$(date +%s.%N)
    jobs+=("$(python3 -c "print(($s1 - $s0) / ($t1 - $t0))")")
    "$bin" jobs --addr 127.0.0.1:50130 cancel "$id" >/dev/null
    "$bin" jobs --addr 127.0.0.1:50130 wait "$id" >/dev/null 2>&1 || true
  done
  job=$(median "${jobs[@]}")
  alone=""; with=""
  if (( rate > 0 )); then alone=$(median "${alones[@]}"); with=$(median "${withs[@]}"); fi
  python3 - "$share" "$cap" "$rate" "$job" "$alone" "$with" "${alones[*]:-}" "${withs[*]:-}" <<'PY'
import sys
share, cap, rate = map(int, sys.argv[1:4])
job = float(sys.argv[4])
alone, with_ = sys.argv[5], sys.argv[6]
spare = cap - rate
line = f"online {share}% ({rate:,}/s): job {job:,.0f} items/s = {job/spare:.2f} of capacity - online ({spare:,})"
if alone:
    line += f"; online p99 {float(alone):.1f} ms alone, {float(with_):.1f} ms with the job ({float(with_)/float(alone):.2f}x); runs: alone {sys.argv[7]}, with {sys.argv[8]}"
print(line)
PY
done
kill "${pids[@]}" 2>/dev/null || true
rm -rf "$work"
