#!/usr/bin/env bash
# The console in a real browser: Debian's chromium and chromedriver
# (headless), driven by Selenium from PyPI, against the binary on its
# embedded default config, with `batchgate bench` loading the echo queue
# and a job running through the sim queue; then a server with a control
# token, where the page pauses a queue, changes its policy and cancels a
# job. Screenshots of each page go to SHOTS (default: a temporary folder).
#
#   .ci/console-check.sh target/debug/batchgate [SHOTS]
set -euo pipefail
bin=${1:?usage: console-check.sh path/to/batchgate [SHOTS]}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
shots=${2:-$work/shots}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# Ports below the kernel's ephemeral range (32768-60999), so no client
# socket of an earlier step can hold them.
# Waits for a server's port; fails with its log if it is not up in 20 s.
up() {
  for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "the server did not come up on port $1:"; cat "$2"; exit 1
}

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check 'selenium>=4.20,<5'

"$bin" serve --grpc-addr 127.0.0.1:20871 --metrics-addr 127.0.0.1:9871 \
  --jobs-path "$work/jobs.sqlite3" >"$work/server.log" 2>&1 &
pids+=($!)
up 20871 "$work/server.log"
up 9871 "$work/server.log"

"$bin" bench --addr http://127.0.0.1:20871 -q echo -c 64 --duration 40s --quiet >/dev/null 2>&1 &
load=$!
pids+=($load)
# A job of 3,000 items through the sim queue: its bar reaches 100%.
python3 -c 'import json; [print(json.dumps({"custom_id": f"c{i}", "payload": "x"})) for i in range(3000)]' >"$work/items.jsonl"
job=$("$bin" jobs --addr 127.0.0.1:20871 submit --queue sim "$work/items.jsonl" 2>/dev/null | tail -1)
"$work/venv/bin/python" "$root/tests/foreign/console/check.py" \
  --url http://127.0.0.1:9871/ui/ --shots "$shots" --job "$job" --job-items 3000
kill "$load" 2>/dev/null || true
wait "$load" 2>/dev/null || true

# With a control token: changes from the page go through it, and those
# made there show in `batchgate ctl describe` and `batchgate jobs get`.
printf 's3cret\n' >"$work/token"
cat >"$work/token.toml" <<TOML
[server]
grpc_addr = "127.0.0.1:20872"
metrics_addr = "127.0.0.1:9872"
control_token_file = "$work/token"
[jobs]
path = "$work/token-jobs.sqlite3"
[queues.echo]
handler = { kind = "echo" }
# One batch of 4 at a time, 200 ms each: a 2,000-item job runs for
# minutes, long enough to cancel from the page.
[queues.slow]
max_batch_size = 4
max_in_flight_batches = 1
handler = { kind = "sim", base = "200ms" }
TOML
"$bin" serve --config "$work/token.toml" >"$work/token-server.log" 2>&1 &
pids+=($!)
up 20872 "$work/token-server.log"
up 9872 "$work/token-server.log"
python3 -c 'import json; [print(json.dumps({"custom_id": f"s{i}", "payload": "x"})) for i in range(2000)]' >"$work/slow.jsonl"
slow=$("$bin" jobs --addr 127.0.0.1:20872 submit --queue slow "$work/slow.jsonl" 2>/dev/null | tail -1)
"$work/venv/bin/python" "$root/tests/foreign/console/check.py" \
  --url http://127.0.0.1:9872/ui/ --shots "$shots" --queues echo --token s3cret --cancel-job "$slow"
"$bin" ctl --addr http://127.0.0.1:20872 --token s3cret describe echo >"$work/describe.txt"
head -n 3 "$work/describe.txt"
grep -qi "paused" "$work/describe.txt" || { echo "ctl describe does not show the pause made in the console"; exit 1; }
grep -E "max_delay = 7ms" "$work/describe.txt" || { echo "ctl describe does not show max_delay_us = 7000 set in the console's form"; exit 1; }
"$bin" jobs --addr 127.0.0.1:20872 get "$slow" >"$work/job.txt"
grep -qi "cancelled" "$work/job.txt" || { echo "the job cancelled in the console is not cancelled:"; cat "$work/job.txt"; exit 1; }
echo "console: ctl describe shows the pause and max_delay 7ms made in the page; jobs get shows $slow cancelled"
