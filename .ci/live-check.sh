#!/usr/bin/env bash
# Starts the built binary on its embedded default config (on spare ports),
# drives it with the same binary as a client, lints the live /metrics text
# with promtool, and checks a clean SIGTERM exit.
set -euo pipefail
bin=${1:?usage: live-check.sh path/to/batchgate}
grpc=127.0.0.1:${BATCHGATE_CI_GRPC_PORT:-20151}
metrics=127.0.0.1:${BATCHGATE_CI_METRICS_PORT:-9564}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin" serve --grpc-addr "$grpc" --metrics-addr "$metrics" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://$metrics/metrics" >/dev/null 2>&1 && break
  sleep 0.1
done

export BATCHGATE_ADDR="http://$grpc"
"$bin" submit --queue echo hello | tee "$work/submit.txt"
grep -qx hello "$work/submit.txt"
grep -q '^batch [0-9]* · size' "$work/submit.txt"
seq 1 500 | "$bin" stream --queue sim >"$work/stream.txt"
test "$(wc -l <"$work/stream.txt")" -eq 500
test "$(cut -f2 "$work/stream.txt" | sort -n | uniq | wc -l)" -eq 500
seq 1 50 | "$bin" stream --queue echo --json | head -n 1 | grep -q '"trigger"'
if "$bin" submit --queue nope x 2>"$work/err.txt"; then
  echo "submit to an unknown queue should fail" >&2; exit 1
fi
grep -q NOT_FOUND "$work/err.txt"

curl -fsS "http://$metrics/metrics" >"$work/metrics.txt"
promtool check metrics <"$work/metrics.txt"
grep -q '^batchgate_batch_size_bucket{queue="sim"' "$work/metrics.txt"
grep -q '^batchgate_items_total{queue="sim",outcome="ok"} 500$' "$work/metrics.txt"

kill -TERM "$pid"
wait "$pid"
echo "live check: ok (clean exit after SIGTERM)"
