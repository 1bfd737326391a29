#!/usr/bin/env bash
# Hostile HTTP/2 clients (tests/foreign/hostile/attacks.py, Python h2 from
# PyPI over raw sockets) against a live batchgate with the default
# transport limits: the server stays up, its RSS stays under the bound, and
# a well-behaved client is answered within 1 s during every attack.
set -euo pipefail
bin=${1:?usage: hostile.sh path/to/batchgate}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# 10,000 idle connections need that many descriptors on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check 'h2>=4.1,<5'
"$bin" serve --config "$root/tests/foreign/hostile/batchgate.toml" >"$work/server.log" 2>&1 &
pid=$!
ready() { (exec 3<>"/dev/tcp/127.0.0.1/20085") 2>/dev/null; }
for _ in $(seq 1 100); do ready && break; sleep 0.1; done
idle=$(( $(ulimit -n) > 12000 ? 10000 : $(ulimit -n) - 2000 ))
if ! "$work/venv/bin/python" "$root/tests/foreign/hostile/attacks.py" \
  --addr 127.0.0.1:20085 --pid "$pid" --rss-mib 256 --idle "$idle"; then
  echo "--- server log (last lines)"; grep -v DEBUG "$work/server.log" | tail -30
  exit 1
fi
kill -0 "$pid"
