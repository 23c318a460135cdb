#!/usr/bin/env bash
# The same load run against two engine binaries, one after the other on
# this machine (config/loadtest.toml, a fresh store each, the load
# generator of this tree), so a change's cost is read as a ratio from one
# sitting rather than against figures from another day:
#
#   scripts/compare.sh OLD_BINARY NEW_BINARY --rate 8000 --duration 60s --batch-max 5
#
# Prints each run's load report and the engine's CPU time and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1
NEW=$2
shift 2
cargo build --release --quiet
LOADGEN=target/release/switchboard
mkdir -p target
ENGINE=
trap '[ -n "$ENGINE" ] && kill "$ENGINE" 2>/dev/null || true' EXIT

run() {
  local binary=$1 name=$2
  shift 2
  rm -rf data-loadtest
  "$binary" serve --config config/loadtest.toml > "target/compare-$name.log" 2>&1 &
  ENGINE=$!
  local engine=$ENGINE
  for _ in $(seq 1 100); do
    curl -fs 127.0.0.1:8080/readyz > /dev/null 2>&1 && break
    sleep 0.1
  done
  local t0
  t0=$(awk '{print $14 + $15}' "/proc/$engine/stat")
  "$LOADGEN" loadgen --app-secret loadtest-app-secret --page 900000000001 \
    --instagram 900000000002 --whatsapp 900000000003 --customers 100000 --quiet "$@" \
    | grep -E "rate|replies|ack |Send API"
  local t1 rss
  t1=$(awk '{print $14 + $15}' "/proc/$engine/stat")
  rss=$(awk '/VmHWM/{print $2}' "/proc/$engine/status")
  echo "  engine CPU $(echo "($t1 - $t0) / $(getconf CLK_TCK)" | bc -l | xargs printf '%.1f') s, peak RSS $((rss / 1024)) MiB"
  kill "$engine"
  wait "$engine" 2>/dev/null || true
}

echo "== $OLD"
run "$OLD" old "$@"
echo "== $NEW"
run "$NEW" new "$@"
