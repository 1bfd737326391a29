#!/usr/bin/env bash
# What the console costs the server: `batchgate bench` on the echo queue
# (256 in flight, 10 s runs) with no page open and with one page's event
# stream open (a snapshot of every queue a second, what an open page
# reads), in the order closed, open, open, closed (so neither side gets
# the warmer half). Prints items/s per run and the
# ratio of the means.
#
#   bench/console.sh [target/release/batchgate]
set -euo pipefail
bin=${1:-target/release/batchgate}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
"$bin" serve --grpc-addr 127.0.0.1:50961 --metrics-addr 127.0.0.1:9961 --jobs-path "$work/jobs.sqlite3" >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/9961) 2>/dev/null && break; sleep 0.1; done
run() {
  "$bin" bench --addr http://127.0.0.1:50961 -q echo -c 256 --duration 10s --warmup 2s --json --quiet |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["items_per_sec"]))'
}
closed=() open=()
with_page() {
  curl -sN http://127.0.0.1:9961/ui/api/events >"$work/events" &
  page=$!
  open+=("$(run)")
  kill "$page" 2>/dev/null || true
  wait "$page" 2>/dev/null || true
  echo "one page open: ${open[-1]} items/s ($(grep -c '^data:' "$work/events") snapshots)"
}
without() {
  closed+=("$(run)")
  echo "closed: ${closed[-1]} items/s"
}
without; with_page; with_page; without
python3 - "${closed[@]}" "${open[@]}" <<'PY'
import sys
v = list(map(float, sys.argv[1:]))
closed, open_ = v[: len(v) // 2], v[len(v) // 2 :]
print(f"open / closed: {sum(open_) / sum(closed):.3f}")
PY
