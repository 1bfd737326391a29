#!/usr/bin/env bash
# The fuzz targets (proptest, stable Rust; `cargo test` runs each with 256
# cases) for a longer budget: each target runs in rounds of CASES random
# inputs (a new seed per round) until SECONDS_EACH pass, and the executions
# are counted. A failure stops with proptest's minimal input.
#
#   bench/fuzz.sh                         # 600 s per target
#   SECONDS_EACH=60 CASES=20000 bench/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${SECONDS_EACH:-600}
CASES=${CASES:-50000}
PROFILE=${PROFILE:-release}   # or dev (no release build first)
flags=(--lib --quiet)
[ "$PROFILE" = release ] && flags+=(--release)
targets=(fuzz_grpc_timeout fuzz_unpack fuzz_config fuzz_update_queue fuzz_keys_and_attributes)
cargo test "${flags[@]}" --no-run
for t in "${targets[@]}"; do
  rounds=0
  end=$(( $(date +%s) + SECONDS_EACH ))
  while [ "$(date +%s)" -lt "$end" ]; do
    BATCHGATE_FUZZ_CASES=$CASES cargo test "${flags[@]}" "$t" >/dev/null
    rounds=$((rounds + 1))
  done
  echo "$t: $((rounds * CASES)) executions in ${SECONDS_EACH}s, no failure"
done
