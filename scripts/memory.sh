#!/usr/bin/env bash
# Resident memory per live and per passivated conversation, on this
# machine: the engine (config/loadtest.toml, fresh embedded store, actors
# passivated after 20 s) gets N new customers with one message each
# (loadgen --round-robin, its sink echoing every reply as Meta does), twice.
#
#   live:        (RSS with N live conversations - RSS before) / the
#                conversations that went live (a machine that cannot keep
#                the rate sends fewer than N)
#   passivated:  after the first N are passivated, N more new ones: the
#                extra RSS they need beyond the first wave's peak, / the
#                conversations of that wave (what a passivated one still
#                holds, at most)
#
#   scripts/memory.sh [N] [RATE]      (default 100000 at 8000/s)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
RATE=${2:-8000}
MILLIS=$(( N * 1000 / RATE ))

# The default page cache (store.cache_mb = 64), not the load config's, unless
# SWITCHBOARD__STORE__CACHE_MB is set.
export SWITCHBOARD__STORE__CACHE_MB=${SWITCHBOARD__STORE__CACHE_MB:-64} SWITCHBOARD__ENGINE__PASSIVATE_AFTER=${SWITCHBOARD__ENGINE__PASSIVATE_AFTER:-20s}
. scripts/loadtest-engine.sh
start_loadtest_engine memory-engine.log

rss() { awk '/VmRSS/{print $2}' "/proc/$ENGINE/status"; }
resident() { curl -fs 127.0.0.1:9464/metrics | awk '/^switchboard_conversations_resident /{print $2}'; }
wave() {
  "$BIN" loadgen --app-secret loadtest-app-secret --page 900000000001 --round-robin --echoes \
    --customers "$1" --rate "$RATE" --duration "$2ms" --seed "$3" --quiet \
    | grep -E "replies "
}

wave 2000 1000 1 > /dev/null            # warm-up: runtime, pools, caches
sleep 2
R0=$(rss)
C0=$(resident)
wave "$N" "$MILLIS" 2
sleep 2
R1=$(rss)
C1=$(resident)
LIVE=$(( C1 - C0 ))
echo "live: $LIVE new conversations ($C1 resident), RSS $((R0 / 1024)) -> $((R1 / 1024)) MiB: $(( (R1 - R0) * 1024 / LIVE )) bytes per live conversation"
for _ in $(seq 1 60); do
  [ "$(resident)" = "0" ] && break
  sleep 2
done
R2=$(rss)
wave "$N" "$MILLIS" 3
sleep 2
R3=$(rss)
LIVE=$(resident)
echo "passivated: RSS $((R2 / 1024)) MiB once the first wave is passivated (memory the allocator keeps for reuse)"
echo "second wave live: RSS $((R3 / 1024)) MiB: $(( (R3 > R1 ? R3 - R1 : 0) * 1024 / LIVE )) bytes per passivated conversation at most ($LIVE live)"
