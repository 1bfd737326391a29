#!/usr/bin/env bash
# http_each against a fast local HTTP server (nginx answering 200 "ok"),
# N requests at 16 and 64 at once (bench/HTTP_EACH.md): batchgate's
# http_each (N items offered over StreamSubmit by the built-in load
# generator, 1,024 unanswered at a time, `max_in_flight` = 16 or 64: the
# limit) against the seed's way, Python
# aiohttp with one session and a semaphore, and asyncio.gather in groups;
# then http_each with `rate` as the limit: requests/s against the rate.
#
#   bench/http_each.sh            # N=20000
# Needs nginx (apt-get install nginx-light) and python3 with aiohttp
# (PYTHON=/path/to/python).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bin=${BIN:-target/release/batchgate}
py=${PYTHON:-python3}
N=${N:-20000}
RATE=${RATE:-2000}
work=$(mktemp -d)
cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work;
  server { listen 127.0.0.1:8097; location / { return 200 "ok\n"; } }
}
NGINX
nginx -c "$work/nginx.conf" -g "daemon off;" &
pids+=($!)
wait_port 8097
url=http://127.0.0.1:8097/api
cat >"$work/q.toml" <<TOML
[server]
grpc_addr = "127.0.0.1:50130"
metrics_addr = "127.0.0.1:9530"

[queues.each16]
max_batch_size = 64
max_delay = "1ms"
handler = { kind = "http_each", url = "$url", max_in_flight = 16 }

[queues.each64]
max_batch_size = 64
max_delay = "1ms"
handler = { kind = "http_each", url = "$url", max_in_flight = 64 }

[queues.rated]
max_batch_size = 64
max_delay = "1ms"
max_queue_items = 100000
handler = { kind = "http_each", url = "$url", max_in_flight = 64, rate = "$RATE/s" }
TOML
"$bin" serve --config "$work/q.toml" >"$work/server.log" 2>&1 &
pids+=($!)
wait_port 50130
each() { # QUEUE CONCURRENCY ITEMS
  "$bin" bench --addr 127.0.0.1:50130 -q "$1" --mode stream --streams 1 -c "$2" \
    --payload-size 0 --items "$3" --warmup 0s --json --quiet 2>/dev/null |
    "$py" -c "import sys,json; r=json.loads(sys.stdin.readline()); print(json.dumps({'requests_per_sec': r['items_per_sec'], 'p99_ms': r['latency_us']['p99'] / 1000, 'failed': sum(r['errors'].values())}))"
}
"$bin" bench --addr 127.0.0.1:50130 -q each64 --mode stream -c 64 --payload-size 0 --items 2000 --quiet >/dev/null 2>&1 || true
for c in 16 64; do
  for run in 1 2; do
    printf 'c=%s run=%s http_each  %s\n' "$c" "$run" "$(each each$c 1024 "$N")"
    printf 'c=%s run=%s semaphore  %s\n' "$c" "$run" "$("$py" bench/http_each_client.py "$url" "$N" "$c" semaphore)"
    printf 'c=%s run=%s gather     %s\n' "$c" "$run" "$("$py" bench/http_each_client.py "$url" "$N" "$c" gather)"
  done
done
# The rate as the limit: as many items as 5 s of it, offered at once.
items=$((RATE * 5))
printf 'rate=%s/s http_each  %s\n' "$RATE" "$(each rated 4096 "$items")"
rm -rf "$work"
