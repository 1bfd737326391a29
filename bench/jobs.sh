#!/usr/bin/env bash
# Jobs, measured on one machine (bench/JOBS.md): ingest of N items of 100
# bytes with `batchgate jobs submit` (items/s and the server's peak RSS),
# the drain of that job through the echo queue (batch 256) against the same
# number of items over StreamSubmit (`batchgate bench --mode stream`), the
# read-back of its results with `jobs results`, and a kill -9 at half of a
# second job, then a restart: results per custom_id, and how many items the
# store had claimed but not recorded (the most that can run twice).
#
#   bench/jobs.sh                 # N=1000000
#   N=100000 bench/jobs.sh
# Needs python3 (the JSONL and the store's count after the kill).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bin=${BIN:-target/release/batchgate}
N=${N:-1000000}
work=$(mktemp -d)
cat >"$work/q.toml" <<TOML
[server]
grpc_addr = "127.0.0.1:50120"
metrics_addr = "127.0.0.1:9520"

[queues.echo]
max_batch_size = 256
max_delay = "2ms"
max_queue_items = 100000
handler = { kind = "echo" }

[jobs]
path = "$work/jobs.sqlite3"
TOML
python3 - "$N" >"$work/items.jsonl" <<'PY'
import sys
pad = "x" * 100
for i in range(int(sys.argv[1])):
    print('{"custom_id": "doc-%d", "payload": "%s"}' % (i, pad))
PY
start_server() {
  "$bin" serve --config "$work/q.toml" >>"$work/server.log" 2>&1 &
  server=$!
  pids+=($server)
  wait_port 50120
}
peak_rss() { # KiB, the most seen while $1 runs
  local pid=$1 most=0 now
  while kill -0 "$pid" 2>/dev/null; do
    now=$(ps -o rss= -p "$server" 2>/dev/null || echo 0)
    (( now > most )) && most=$now
    sleep 0.05
  done
  echo "$most"
}
now() { date +%s.%N; }
start_server
idle_rss=$(ps -o rss= -p "$server")
t0=$(now)
"$bin" jobs --addr 127.0.0.1:50120 submit --queue echo "$work/items.jsonl" >"$work/id" 2>/dev/null &
up=$!
rss=$(peak_rss $up)
wait $up
t1=$(now)
id=$(tail -1 "$work/id")
"$bin" jobs --addr 127.0.0.1:50120 wait "$id" >/dev/null 2>&1
t2=$(now)
"$bin" jobs --addr 127.0.0.1:50120 results "$id" >"$work/results.jsonl"
t3=$(now)
distinct=$(python3 -c "import sys,json; print(len({json.loads(l)['custom_id'] for l in open(sys.argv[1])}))" "$work/results.jsonl")
stream=$("$bin" bench --addr 127.0.0.1:50120 -q echo --mode stream --streams 4 -c 1024 \
  --payload-size 100 --items "$N" --json --quiet 2>/dev/null | python3 -c "import sys,json; print(round(json.loads(sys.stdin.readline())['items_per_sec']))")
python3 - "$N" "$t0" "$t1" "$t2" "$t3" "$idle_rss" "$rss" "$stream" "$distinct" <<'PY'
import sys
n, t0, t1, t2, t3 = int(sys.argv[1]), *map(float, sys.argv[2:6])
idle, peak, stream, distinct = int(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8]), int(sys.argv[9])
drain = n / (t2 - t1)
print(f"ingest: {n:,} items in {t1-t0:.2f} s = {n/(t1-t0):,.0f} items/s; server RSS {idle/1024:.0f} MiB idle, peak {peak/1024:.0f} MiB")
print(f"drain: {drain:,.0f} items/s; StreamSubmit of as many: {stream:,.0f} items/s; ratio {drain/stream:.2f}")
print(f"read-back: {n:,} results in {t3-t2:.2f} s = {n/(t3-t2):,.0f} results/s; {distinct:,} distinct custom_ids")
PY
# Crash: a second job, kill -9 at half, restart.
id=$("$bin" jobs --addr 127.0.0.1:50120 submit --queue echo "$work/items.jsonl" 2>/dev/null | tail -1)
while :; do
  done_=$("$bin" jobs --addr 127.0.0.1:50120 get "$id" | sed -n 's/.* succeeded=\([0-9]*\).*/\1/p')
  (( done_ >= N / 2 )) && break
  sleep 0.05
done
kill -9 "$server"; wait "$server" 2>/dev/null || true
claimed=$(python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute(\"SELECT next_seq - (succeeded + failed + cancelled + expired) FROM jobs WHERE id=?\", (sys.argv[2],)).fetchone()[0])" "$work/jobs.sqlite3" "$id")
start_server
"$bin" jobs --addr 127.0.0.1:50120 wait "$id" >/dev/null 2>&1 || true
"$bin" jobs --addr 127.0.0.1:50120 get "$id"
"$bin" jobs --addr 127.0.0.1:50120 results "$id" | python3 -c "
import sys, json
ids = [json.loads(l)['custom_id'] for l in sys.stdin]
print(f'crash: killed at >= half, {len(ids):,} results, {len(set(ids)):,} distinct custom_ids; {sys.argv[1]} items claimed but not recorded at the kill (the most that ran twice)')
" "$claimed"
kill "$server" 2>/dev/null || true
rm -rf "$work"
