#!/usr/bin/env bash
# A load run on this machine, everything on 127.0.0.1: builds the release
# binary, starts `switchboard serve --config config/loadtest.toml` on a
# fresh embedded store, runs `switchboard loadgen` against it with the
# options given here, then prints the engine's CPU time and memory.
#
#   scripts/loadtest.sh --rate 10000 --duration 10m --batch-max 5 --duplicates 0.05
#
# Defaults added: the loadtest config's app secret and Page, 100k customers.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/loadtest-engine.sh
start_loadtest_engine loadtest-engine.log

cpu_ticks() { awk '{print $14 + $15}' "/proc/$ENGINE/stat"; }
TICKS0=$(cpu_ticks)
START=$(date +%s.%N)
STATUS=0
"$BIN" loadgen --app-secret loadtest-app-secret --page 900000000001 \
  --instagram 900000000002 --whatsapp 900000000003 --gmail support@load.example \
  --customers 100000 "$@" || STATUS=$?
END=$(date +%s.%N)
TICKS1=$(cpu_ticks)
HZ=$(getconf CLK_TCK)
RSS=$(awk '/VmHWM/{print $2}' "/proc/$ENGINE/status")
echo "engine: $(echo "($TICKS1 - $TICKS0) / $HZ" | bc -l | xargs printf '%.1f') s CPU over $(echo "$END - $START" | bc -l | xargs printf '%.1f') s wall, peak RSS $((RSS / 1024)) MiB"
exit "$STATUS"
