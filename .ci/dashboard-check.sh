#!/usr/bin/env bash
# The chart's Grafana dashboard and alerts against a real Prometheus
# scraping a live batchgate under load: every panel query and every
# alert's signal (its expression without the threshold) must parse and
# return data; every alert expression must parse; the rule file passes
# `promtool check rules` and Prometheus loads it healthy.
set -euo pipefail
bin=${1:?usage: dashboard-check.sh path/to/batchgate}
root=$(cd "$(dirname "$0")/.." && pwd)
chart="$root/helm/batchgate"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
ready() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

promtool check rules "$chart/alerts/batchgate-rules.yaml"

# batchgate: a batching queue, a queue batching by key (a named key and an
# unnamed one), a queue that sheds, and a remote queue whose only endpoint
# is down (backend metrics, retries, ejections).
cat >"$work/batchgate.toml" <<'TOML'
[server]
grpc_addr = "127.0.0.1:20451"
metrics_addr = "127.0.0.1:9651"

[queues.sim]
max_batch_size = 64
max_delay = "2ms"
handler = { kind = "sim", base = "2ms", per_item = "10us" }

[queues.keyed]
max_batch_size = 32
max_delay = "2ms"
weights = { "tenant-a" = 2 }
handler = { kind = "sim", base = "2ms", per_item = "10us" }

[queues.shed]
mode = "target"
target_latency = "5ms"
shed = true
max_in_flight_batches = 1
handler = { kind = "sim", base = "4ms", per_item = "50us" }

[queues.remote]
max_batch_size = 8
max_delay = "1ms"
handler = { kind = "grpc", endpoints = ["http://127.0.0.1:9"], retries = 1, retry_backoff = "1ms", eject_after = 1, eject_for = "100ms", timeout = "1s" }
TOML
"$bin" serve --config "$work/batchgate.toml" >"$work/batchgate.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do ready 20451 && break; sleep 0.1; done

cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $chart/alerts/batchgate-rules.yaml
scrape_configs:
  - job_name: batchgate
    static_configs:
      - targets: ["127.0.0.1:9651"]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address=127.0.0.1:9652 >"$work/prometheus.log" 2>&1 &
pids+=($!)

# Load for the whole check.
"$bin" bench --addr http://127.0.0.1:20451 -q sim --mode stream -c 256 --duration 60s --warmup 0s --quiet >/dev/null 2>&1 &
pids+=($!)
"$bin" bench --addr http://127.0.0.1:20451 -q keyed --mode stream -c 256 --batch-key tenant-a --duration 60s --warmup 0s --quiet >/dev/null 2>&1 &
pids+=($!)
"$bin" bench --addr http://127.0.0.1:20451 -q keyed --mode unary -c 64 --batch-key tenant-b --duration 60s --warmup 0s --quiet >/dev/null 2>&1 &
pids+=($!)
"$bin" bench --addr http://127.0.0.1:20451 -q shed --mode stream -c 2048 --duration 60s --warmup 0s --quiet >/dev/null 2>&1 &
pids+=($!)
"$bin" bench --addr http://127.0.0.1:20451 -q remote --mode unary -c 4 --duration 60s --warmup 0s --quiet >/dev/null 2>&1 &
pids+=($!)

python3 - "$chart" <<'PY'
import json, re, sys, time, urllib.parse, urllib.request

chart = sys.argv[1]
api = "http://127.0.0.1:9652/api/v1"


def query(expr):
    url = f"{api}/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)
    except OSError:
        return {"status": "down"}


dashboard = json.load(open(f"{chart}/dashboards/batchgate.json"))
checks = []
for panel in dashboard["panels"]:
    for target in panel["targets"]:
        expr = target["expr"].replace("$queue", ".*").replace("$__rate_interval", "1m")
        checks.append((f"panel {panel['title']!r} {target['refId']}", expr, True))
rules = open(f"{chart}/alerts/batchgate-rules.yaml").read()
# The alerts (read without a YAML library): each expr must parse; each
# signal must return data.
blocks = re.split(r"\n      - alert: ", rules)[1:]
for block in blocks:
    name = block.splitlines()[0].strip()
    def field(key):
        m = re.search(rf"\n        {key}: (>-\n((?:          .*\n?)+)|(.*))", block)
        if m is None:
            m = re.search(rf"\n          {key}: (>-\n((?:            .*\n?)+)|(.*))", block)
        text = m.group(2) if m.group(2) else m.group(3)
        return " ".join(line.strip() for line in text.splitlines())
    checks.append((f"alert {name} expr", field("expr"), False))
    checks.append((f"alert {name} signal", field("signal"), True))
assert len(blocks) >= 4, "the alerts were not found"

deadline = time.time() + 90
pending = checks
while True:
    failing = []
    for name, expr, needs_data in pending:
        r = query(expr)
        if r.get("status") != "success":
            failing.append((name, expr, r.get("error", r.get("status"))))
        elif needs_data and not r["data"]["result"]:
            failing.append((name, expr, "no data"))
    parse_errors = [f for f in failing if f[2] not in ("no data", "down")]
    if parse_errors:
        for name, expr, why in parse_errors:
            print(f"FAIL {name}: {why}\n  {expr}")
        sys.exit(1)
    if not failing:
        break
    if time.time() > deadline:
        for name, expr, why in failing:
            print(f"FAIL {name}: {why}\n  {expr}")
        sys.exit(1)
    pending = [c for c in checks if c[0] in {f[0] for f in failing}]
    time.sleep(2)
print(f"{len(checks)} queries: every panel and alert signal returns data, every alert parses")

with urllib.request.urlopen(f"{api}/rules", timeout=5) as r:
    groups = json.load(r)["data"]["groups"]
unhealthy = [rule["name"] for g in groups for rule in g["rules"] if rule.get("health") != "ok"]
loaded = sum(len(g["rules"]) for g in groups)
if unhealthy or loaded < len(blocks):
    print(f"FAIL rules: {loaded} loaded, unhealthy: {unhealthy}")
    sys.exit(1)
print(f"Prometheus loaded {loaded} alerting rules, all healthy")
PY
echo "dashboard check: ok"
