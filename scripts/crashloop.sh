#!/usr/bin/env bash
# SIGKILL under load, again and again, over many runs: the release engine
# (config/loadtest.toml, a fresh embedded store each run) takes signed
# traffic from `switchboard loadgen`, whose Graph API sink echoes every
# reply back as Meta does and which retries refused webhooks as Meta does;
# the engine is killed with SIGKILL every KILL_EVERY seconds while the load
# runs and restarted at once on the same data. One line per run; exits
# non-zero if any run lost or doubled a reply.
#
#   scripts/crashloop.sh [RUNS] [RATE] [SECONDS] [KILL_EVERY]
#   (defaults: 5 runs, 2000 events/s, 20 s, every 5 s)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
RATE=${2:-2000}
SECONDS_LOAD=${3:-20}
KILL_EVERY=${4:-5}

cargo build --release --quiet
BIN=target/release/switchboard
mkdir -p target
ENGINE=
start_engine() {
  "$BIN" serve --config config/loadtest.toml >> target/crashloop-engine.log 2>&1 &
  ENGINE=$!
  for _ in $(seq 1 200); do
    curl -fs 127.0.0.1:8080/readyz > /dev/null 2>&1 && return
    sleep 0.05
  done
  echo "engine not ready; see target/crashloop-engine.log" >&2
  exit 1
}
trap '[ -n "$ENGINE" ] && kill -9 "$ENGINE" 2>/dev/null || true' EXIT

failed=0
for run in $(seq 1 "$RUNS"); do
  rm -rf data-loadtest
  : > target/crashloop-engine.log
  start_engine
  "$BIN" loadgen --app-secret loadtest-app-secret --page 900000000001 \
    --whatsapp 900000000003 --whatsapp-share 0.2 --customers 100000 \
    --rate "$RATE" --duration "${SECONDS_LOAD}s" --batch-max 5 --duplicates 0.05 \
    --echoes --retries 300 --retry-pause 200ms --drain 60s --seed "$run" \
    --json --quiet > target/crashloop-report.json &
  LOADGEN=$!
  kills=0
  elapsed=0
  while [ "$elapsed" -lt "$SECONDS_LOAD" ]; do
    sleep "$KILL_EVERY"
    elapsed=$((elapsed + KILL_EVERY))
    [ "$elapsed" -lt "$SECONDS_LOAD" ] || break
    kill -9 "$ENGINE"
    wait "$ENGINE" 2>/dev/null || true
    kills=$((kills + 1))
    start_engine
  done
  status=0
  wait "$LOADGEN" || status=$?
  python3 - "$run" "$kills" "$status" <<'EOF'
import json, sys
run, kills, status = sys.argv[1:]
r = json.load(open("target/crashloop-report.json"))
print(f"run {run}: {kills} kills, {r['replies_expected']} replies expected, "
      f"{r['replies_received']} received, {r['replies_missing']} missing, "
      f"{r['replies_duplicated']} duplicated, {r['webhooks_failed']} webhooks never accepted "
      f"(loadgen exit {status})")
EOF
  [ "$status" -eq 0 ] || failed=1
  kill "$ENGINE" 2>/dev/null || true
  wait "$ENGINE" 2>/dev/null || true
done
exit "$failed"
