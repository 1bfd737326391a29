#!/usr/bin/env bash
# One hot queue across cores: a queue of 1, 2, 4 and 8 shards against the
# bare tonic echo (the limit) and against two queues of one shard, with the
# server pinned to SERVER_CPUS and the load generator to CLIENT_CPUS.
# Per point: items/s, p50/p99 and the server's CPU per item (ns, from
# /proc: every thread of the server, the actors' included).
#
#   BIN=target/release/batchgate bench/cores.sh                # 2 cores: 0 / 1
#   SERVER_CPUS=0-7 CLIENT_CPUS=8-15 bench/cores.sh           # 16 cores
#   DUR=4s REPS=2 OUT=/tmp/cores bench/cores.sh
#
# Writes $OUT/cores.jsonl (one `batchgate bench --json` line per point, with
# server_ns_per_item added) and prints a table.
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/batchgate}
OUT=${OUT:-bench/results/cores-$(date -u +%Y%m%d-%H%M%S)}
DUR=${DUR:-4s}
REPS=${REPS:-2}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
mkdir -p "$OUT"
J=$OUT/cores.jsonl; : >"$J"
. bench/lib.sh

cfg=$OUT/cores.toml
{
  printf '[server]\ngrpc_addr = "127.0.0.1:50161"\nmetrics_addr = "127.0.0.1:9566"\n'
  for s in 1 2 4 8; do
    printf '[queues.s%s]\nmax_batch_size = 64\nmax_delay = "2ms"\nmax_queue_items = 1000000\nshards = %s\nhandler = { kind = "echo" }\n' "$s" "$s"
    printf '[queues.u%s]\nmax_batch_size = 256\nmax_delay = "2ms"\nmax_queue_items = 1000000\nshards = %s\nhandler = { kind = "echo" }\n' "$s" "$s"
  done
  printf '[queues.other]\nmax_batch_size = 64\nmax_delay = "2ms"\nmax_queue_items = 1000000\nhandler = { kind = "echo" }\n'
} >"$cfg"

taskset -c "$SERVER_CPUS" "$BIN" bare-echo --addr 127.0.0.1:50162 2>/dev/null & bare=$!; pids+=($bare)
taskset -c "$SERVER_CPUS" "$BIN" serve --config "$cfg" 2>"$OUT/server.log" & bg=$!; pids+=($bg)
wait_port 50162 && wait_port 50161 || exit 1
hz=$(getconf CLK_TCK)

# point LABEL SERVER_PID ARGS...: one bench run, its line to $J with the
# server's CPU per item.
point() {
  local label=$1 pid=$2; shift 2
  local t0 line
  t0=$(ticks "$pid")
  line=$(taskset -c "$CLIENT_CPUS" "$BIN" bench --quiet --json --duration "$DUR" --warmup 1s --label "$label" "$@")
  python3 - "$line" "$(( $(ticks "$pid") - t0 ))" "$hz" "$DUR" <<'PY' | tee -a "$J" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read()); l = r["latency_us"]
print("%-28s %10.0f/s  p50 %6d us  p99 %6d us  server %5.0f ns/item  errors %s" % (r["label"], r["items_per_sec"], l["p50"], l["p99"], r["server_ns_per_item"], r["errors"] or 0))'
import json, sys
line, ticks, hz, dur = sys.argv[1:]
r = json.loads(line)
# Ticks cover warm-up and measurement; items cover the measurement only,
# so scale the items to the whole span (warm-up is 1 s).
secs = float(dur.rstrip("s")) + 1.0
items = r["items_per_sec"] * secs
r["server_ns_per_item"] = int(ticks) / int(hz) * 1e9 / max(items, 1)
print(json.dumps(r))
PY
}

stream() { echo "--addr http://127.0.0.1:$1 --mode stream --streams 8 --connections 8 -c 1024"; }
for rep in $(seq 1 "$REPS"); do
  echo "== rep $rep"
  point "limit/stream s=8" $bare $(stream 50162)
  for s in 1 2 4 8; do
    point "shards=$s/stream s=8" $bg $(stream 50161) -q s$s
  done
  # Two queues of one shard, 4 streams each, at once.
  d1=$(mktemp); d2=$(mktemp)
  t0=$(ticks $bg)
  taskset -c "$CLIENT_CPUS" "$BIN" bench --quiet --json --duration "$DUR" --warmup 1s --mode stream --streams 4 --connections 4 -c 1024 --addr http://127.0.0.1:50161 -q s1 >"$d1" & w1=$!
  taskset -c "$CLIENT_CPUS" "$BIN" bench --quiet --json --duration "$DUR" --warmup 1s --mode stream --streams 4 --connections 4 -c 1024 --addr http://127.0.0.1:50161 -q other >"$d2" & w2=$!
  wait $w1 $w2
  python3 - "$d1" "$d2" "$(( $(ticks $bg) - t0 ))" "$hz" "$DUR" <<'PY' | tee -a "$J" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("%-28s %10.0f/s  server %5.0f ns/item" % (r["label"], r["items_per_sec"], r["server_ns_per_item"]))'
import json, sys
a, b, ticks, hz, dur = sys.argv[1:]
ra, rb = json.load(open(a)), json.load(open(b))
ips = ra["items_per_sec"] + rb["items_per_sec"]
secs = float(dur.rstrip("s")) + 1.0
print(json.dumps({"label": "2 queues/stream s=4+4", "items_per_sec": ips,
                  "server_ns_per_item": int(ticks) / int(hz) * 1e9 / max(ips * secs, 1)}))
PY
  point "limit/unary c=1024" $bare --addr http://127.0.0.1:50162 -c 1024 --connections 16
  for s in 1 4; do
    point "shards=$s/unary c=1024 b=256" $bg --addr http://127.0.0.1:50161 -c 1024 --connections 16 -q u$s
  done
  for s in 1 4; do
    point "shards=$s/lone unary" $bg --addr http://127.0.0.1:50161 -c 1 --connections 1 -q s$s
  done
done
echo "results: $J"
