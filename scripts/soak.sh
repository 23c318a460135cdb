#!/usr/bin/env bash
# A soak on this machine, everything on 127.0.0.1: the load-test engine
# with a short retention (message-log lines and remembered ids alike), fed
# by `switchboard loadgen` at a steady rate, one line a minute of latency
# percentiles, engine memory, the store's size on disk and the embedded
# bus's and store's group commits that minute (scripts/commit-stats.py), so
# whether they stay flat can be read off the log.
#
#   scripts/soak.sh                      # 2000 events/s for 60m, retention 10m
#   SOAK_RATE=3000 SOAK_DURATION=10m SOAK_RETENTION=5m scripts/soak.sh
#
# The log is also written to target/soak.log.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${SOAK_RATE:-2000}
DURATION=${SOAK_DURATION:-60m}
RETENTION=${SOAK_RETENTION:-10m}
CUSTOMERS=${SOAK_CUSTOMERS:-100000}

mkdir -p target
# Retention and every integration's dedup window set to RETENTION.
awk -v r="$RETENTION" '
  { print }
  /^\[store\]$/ { print "retention = \"" r "\"" }
  /^\[\[integrations\]\]$/ { print "dedup_window = \"" r "\"" }
' config/loadtest.toml > target/loadtest-soak.toml
export LOADTEST_CONFIG=target/loadtest-soak.toml

. scripts/loadtest-engine.sh
start_loadtest_engine soak-engine.log
exec > >(tee target/soak.log) 2>&1
echo "soak: $RATE events/s for $DURATION over $CUSTOMERS customers, retention $RETENTION"

mib() { local b; b=$(du -sb "$1" 2>/dev/null | cut -f1); echo $(( ${b:-0} / 1048576 )); }
(
  start=$(date +%s)
  curl -fs 127.0.0.1:9464/metrics > target/soak-metrics.prev || true
  while kill -0 "$ENGINE" 2> /dev/null; do
    sleep 60
    if curl -fs 127.0.0.1:9464/metrics > target/soak-metrics.now; then
      python3 scripts/commit-stats.py target/soak-metrics.prev target/soak-metrics.now || true
      mv target/soak-metrics.now target/soak-metrics.prev
    fi
    echo "disk     $(( $(date +%s) - start ))s  store $(mib data-loadtest/store) MiB  bus log $(mib data-loadtest/bus) MiB  engine CPU $(awk -v hz="$(getconf CLK_TCK)" '{printf "%.0f", ($14 + $15) / hz}' "/proc/$ENGINE/stat") s"
  done
) &
SAMPLER=$!
STATUS=0
"$BIN" loadgen --app-secret loadtest-app-secret --page 900000000001 \
  --customers "$CUSTOMERS" --round-robin --rate "$RATE" --duration "$DURATION" \
  --interval 1m --engine-pid "$ENGINE" --quiet || STATUS=$?
kill "$SAMPLER" 2> /dev/null || true
exit "$STATUS"
