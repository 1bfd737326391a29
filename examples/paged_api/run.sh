#!/usr/bin/env bash
# Fetches every page (0..PAGES-1) of the stand-in API as one durable job and
# prints the tasks in page order. Run from the repository root:
#   bash examples/paged_api/run.sh [PAGES]
set -euo pipefail
PAGES=${1:-200}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
bin=${BATCHGATE_BIN:-target/release/batchgate}
[ -x "$bin" ] || cargo build --release --quiet
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

python3 "$here/api.py" 8099 50 &
pids+=($!)
(cd "$work" && PAGED_API_TOKEN=demo-token exec "$bin" serve --config "$here/batchgate.toml" >"$work/server.log" 2>&1) &
pids+=($!)
export BATCHGATE_ADDR=http://127.0.0.1:50071 BATCHGATE_CONTROL_ADDR=http://127.0.0.1:50071
for _ in $(seq 100); do "$bin" ctl list >/dev/null 2>&1 && break; sleep 0.1; done

# One line a page: the page number is the URL's {page} placeholder.
for p in $(seq 0 $((PAGES - 1))); do
  printf '{"custom_id": "page-%d", "payload": "", "attributes": {"page": "%d"}}\n' "$p" "$p"
done >"$work/pages.jsonl"

start=$(date +%s.%N)
id=$("$bin" jobs submit --queue pages "$work/pages.jsonl" | tail -n 1)
"$bin" jobs wait "$id" >/dev/null
"$bin" jobs results "$id" >"$work/results.jsonl"
end=$(date +%s.%N)

python3 - "$work/results.jsonl" "$PAGES" "$start" "$end" <<'PY'
import json, sys, urllib.request
lines = [json.loads(l) for l in open(sys.argv[1])]
pages, start, end = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
errors = [l for l in lines if "error" in l]
ok = sorted((int(l["custom_id"].split("-")[1]), json.loads(l["payload"])) for l in lines if "error" not in l)
tasks = [t for _, body in ok for t in body["tasks"]]
assert [p for p, _ in ok] == list(range(pages)), "every page once"
stats = json.load(urllib.request.urlopen("http://127.0.0.1:8099/stats"))
print(f"{len(ok)} pages, {len(tasks)} tasks in page order (first {tasks[0]['title']!r}, last {tasks[-1]['title']!r}), {len(errors)} errors")
print(f"{end - start:.1f} s ({len(ok) / (end - start):.1f} pages/s at rate 40/s); the API saw {stats['requests'] - 1} requests, answered {stats['too_many']} with 429")
PY
