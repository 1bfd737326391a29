#!/usr/bin/env bash
# The soak: a long run at 80% of measured capacity with faults on a timer.
#
# - Load (crates/bench/examples/soak.rs): half unary Submit calls, half items over 4
#   StreamSubmit streams, batch keys t0..t3, every item with an idempotency
#   key and a payload of its own, so each answer is checked against its item.
# - Queue `soak`: batches of 64 within 2 ms to a remote gRPC backend with two
#   endpoints (`batchgate bare-echo`). Every KILL_EVERY seconds one of them
#   (in turn) is killed with SIGKILL and started again DOWN seconds later.
# - Every RELOAD_EVERY seconds the config is rewritten (max_delay flips
#   between 2 ms and 3 ms) and the server gets SIGHUP.
# - The server's RSS is read from /proc every second; latency (from each
#   item's intended send time) is kept per SEGMENT.
#
# Capacity is measured first (PROBE of closed-loop load on the same setup);
# the soak then runs open loop at FRACTION of it. Prints the figures and the
# goals (RSS growth after the first segment < 5%, p99 of the last segment
# <= 1.2x the second's, 0 lost, 0 duplicated, 0 wrong); exits 1 if any item
# was lost, duplicated, answered wrongly or failed.
#
#   bench/soak.sh                                   # 10 minutes, release
#   DURATION=60 SEGMENT=10 KILL_EVERY=20 RELOAD_EVERY=10 PROFILE=debug bench/soak.sh
set -u
cd "$(dirname "$0")/.."
DURATION=${DURATION:-600}
SEGMENT=${SEGMENT:-60}
KILL_EVERY=${KILL_EVERY:-60}
RELOAD_EVERY=${RELOAD_EVERY:-30}
DOWN=${DOWN:-2}
PROBE=${PROBE:-15}
FRACTION=${FRACTION:-0.8}
PROFILE=${PROFILE:-release}
OUT=${OUT:-bench/results/soak-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
if [ "$PROFILE" = release ]; then
  cargo build --release --quiet --bin batchgate --example soak || exit 1
  dir=target/release
else
  cargo build --quiet --bin batchgate --example soak || exit 1
  dir=target/debug
fi
BIN=${BIN:-$dir/batchgate}
LOAD=${LOAD:-$dir/examples/soak}
. bench/lib.sh

GRPC=127.0.0.1:50201
METRICS=127.0.0.1:9601
ENDPOINTS=(127.0.0.1:50202 127.0.0.1:50203)
config() { # max_delay
  cat >"$OUT/soak.toml.new" <<EOF
[server]
grpc_addr = "$GRPC"
metrics_addr = "$METRICS"
log_format = "compact"

[queues.soak]
max_batch_size = 64
max_delay = "$1"
max_queue_items = 1000000
idempotency_window = "5s"
idempotency_max_keys = 1000000
handler = { kind = "grpc", endpoints = ["http://${ENDPOINTS[0]}", "http://${ENDPOINTS[1]}"], max_in_flight = 8 }
EOF
  mv "$OUT/soak.toml.new" "$OUT/soak.toml"
}
backend_pid=()
start_backend() { # index
  "$BIN" bare-echo --addr "${ENDPOINTS[$1]}" 2>>"$OUT/backend$1.log" &
  backend_pid[$1]=$!
  pids+=($!)
}
start_backend 0
start_backend 1
config 2ms
"$BIN" serve --config "$OUT/soak.toml" 2>"$OUT/server.log" & server=$!
pids+=($server)
wait_port "${ENDPOINTS[0]##*:}" && wait_port "${ENDPOINTS[1]##*:}" && wait_port "${GRPC##*:}" || exit 1

load() { "$LOAD" --addr "http://$GRPC" -q soak --idempotency "$@"; }

echo "capacity: ${PROBE}s closed loop"
load --duration "${PROBE}s" --segment "${PROBE}s" >"$OUT/probe.json" || exit 1
capacity=$(python3 -c "import json; print(json.load(open('$OUT/probe.json'))['items_per_sec'])")
rate=$(python3 -c "print(round($capacity * $FRACTION))")
echo "capacity ${capacity%.*} items/s; soak at $rate items/s for ${DURATION}s"

# RSS each second, faults on their timers, while the load runs.
(t=0; while kill -0 "$server" 2>/dev/null; do
   printf '%s %s\n' "$t" "$(awk '/VmRSS/ {print $2}' "/proc/$server/status" 2>/dev/null)"
   sleep 1; t=$((t + 1))
 done) >"$OUT/rss.txt" & pids+=($!)
load --rate "$rate" --duration "${DURATION}s" --segment "${SEGMENT}s" >"$OUT/soak.json" & loader=$!
faults() {
  local t=0 k=0 delay=2ms
  while kill -0 "$loader" 2>/dev/null; do
    sleep 1; t=$((t + 1))
    if [ $((t % RELOAD_EVERY)) -eq 0 ]; then
      if [ "$delay" = 2ms ]; then delay=3ms; else delay=2ms; fi
      config "$delay"
      kill -HUP "$server"
      echo "$t reload max_delay=$delay"
    fi
    if [ $((t % KILL_EVERY)) -eq 0 ] && [ "$t" -lt "$DURATION" ]; then
      local i=$((k % 2))
      k=$((k + 1))
      kill -9 "${backend_pid[$i]}"
      wait "${backend_pid[$i]}" 2>/dev/null
      echo "$t kill endpoint $i"
      sleep "$DOWN"; t=$((t + DOWN))
      start_backend "$i"
      echo "$t restart endpoint $i"
    fi
  done
}
faults >"$OUT/faults.txt"
wait "$loader" || exit 1
curl -s "http://$METRICS/metrics" >"$OUT/metrics.txt" 2>/dev/null || true

python3 - "$OUT" "$SEGMENT" "$capacity" "$rate" <<'PY'
import json, re, sys
out, segment, capacity, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
r = json.load(open(f"{out}/soak.json"))
rss = [(int(t), int(kb)) for t, kb in (l.split() for l in open(f"{out}/rss.txt")) if kb.strip()]
metrics = open(f"{out}/metrics.txt").read()
def metric(name, label=""):
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name) and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)
faults = open(f"{out}/faults.txt").read().splitlines()
kills = sum("kill" in f for f in faults)
reloads = sum("reload" in f for f in faults)
a = r["all"]
print(f"capacity (closed loop): {capacity:,.0f} items/s; soak rate: {rate:,} items/s "
      f"({r['duration_s']:.0f} s, segments of {segment} s)")
reloads_ok = metric("batchgate_config_reloads_total", 'result="ok"')
reloads_failed = metric("batchgate_config_reloads_total", 'result="error"')
print(f"faults: {kills} endpoint kills, {reloads} reloads "
      f"(server counted {reloads_ok} ok, {reloads_failed} failed); "
      f"backend retries {metric('batchgate_backend_retries_total')}, ejections {metric('batchgate_backend_ejections_total')}")
print()
print("| segment | items answered | p50 | p99 | max | RSS at end |")
print("|---|---|---|---|---|---|")
rss_at = dict(rss)
for s in a["segments"]:
    end = (s["segment"] + 1) * segment
    kb = rss_at.get(end) or (rss[-1][1] if rss else 0)
    print(f"| {s['segment'] + 1} | {s['ok']:,} | {s['p50_us']/1000:.2f} ms | {s['p99_us']/1000:.2f} ms | "
          f"{s['max_us']/1000:.1f} ms | {kb/1024:.1f} MiB |")
print()
for k in ("unary", "stream", "all"):
    t = r[k]
    errors = sum(t["errors"].values())
    print(f"{k}: sent {t['sent']:,}, ok {t['ok']:,}, errors {errors} {t['errors'] or ''}, "
          f"wrong {t['wrong']}, duplicated {t['duplicated']}, lost {t['lost']}")
first = rss_at.get(segment) or rss[0][1]
after = [kb for t, kb in rss if t >= segment]
growth = (max(after) - first) / first if after else 0.0
segs = a["segments"]
ratio = segs[-1]["p99_us"] / segs[1]["p99_us"] if len(segs) > 2 and segs[1]["p99_us"] else float("nan")
errors = sum(a["errors"].values())
print()
print(f"RSS after the first segment: {first/1024:.1f} MiB, highest later {max(after)/1024 if after else 0:.1f} MiB: "
      f"growth {growth*100:.1f}% (goal < 5%: {'met' if growth < 0.05 else 'missed'})")
print(f"p99 last segment / second: {ratio:.2f} (goal <= 1.2: {'met' if ratio <= 1.2 else 'missed'})")
print(f"lost {a['lost']}, duplicated {a['duplicated']}, wrong {a['wrong']}, failed {errors} "
      f"(goal 0: {'met' if a['lost'] == a['duplicated'] == a['wrong'] == errors == 0 else 'missed'})")
json.dump({"capacity": capacity, "rate": rate, "rss_growth": growth, "p99_ratio": ratio,
           "kills": kills, "reloads": reloads, **{k: r[k] for k in ("unary", "stream", "all")}},
          open(f"{out}/summary.json", "w"))
sys.exit(0 if a["lost"] == a["duplicated"] == a["wrong"] == errors == 0 and a["sent"] > 0 else 1)
PY
