#!/usr/bin/env bash
# Resident memory per live and per passivated conversation, on this
# machine: the engine (config/loadtest.toml, fresh embedded store, actors
# passivated after 20 s) gets N new customers with one message each
# (loadgen --round-robin), twice.
#
#   live:        (RSS with N live conversations - RSS before) / N
#   passivated:  after the first N are passivated, N more new ones: the
#                extra RSS they need beyond the first wave's peak, / N
#                (what a passivated conversation still holds, at most)
#
#   scripts/memory.sh [N]      (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
RATE=8000
MILLIS=$(( N * 1000 / RATE ))

# The default page cache (store.cache_mb = 64), not the load config's.
export SWITCHBOARD__STORE__CACHE_MB=64 SWITCHBOARD__ENGINE__PASSIVATE_AFTER=20s
. scripts/loadtest-engine.sh
start_loadtest_engine memory-engine.log

rss() { awk '/VmRSS/{print $2}' "/proc/$ENGINE/status"; }
resident() { curl -fs 127.0.0.1:9464/metrics | awk '/^switchboard_conversations_resident /{print $2}'; }
wave() {
  "$BIN" loadgen --app-secret loadtest-app-secret --page 900000000001 --round-robin \
    --customers "$1" --rate "$RATE" --duration "$2ms" --seed "$3" --quiet \
    | grep -E "replies "
}

wave 2000 1000 1 > /dev/null            # warm-up: runtime, pools, caches
R0=$(rss)
wave "$N" "$MILLIS" 2
sleep 2
R1=$(rss)
echo "live: $(resident) conversations, RSS $((R0 / 1024)) -> $((R1 / 1024)) MiB: $(( (R1 - R0) * 1024 / N )) bytes per live conversation"
for _ in $(seq 1 60); do
  [ "$(resident)" = "0" ] && break
  sleep 2
done
R2=$(rss)
wave "$N" "$MILLIS" 3
sleep 2
R3=$(rss)
echo "passivated: RSS $((R2 / 1024)) MiB once the first wave is passivated (memory the allocator keeps for reuse)"
echo "second wave live: RSS $((R3 / 1024)) MiB: $(( (R3 > R1 ? R3 - R1 : 0) * 1024 / N )) bytes per passivated conversation at most"
