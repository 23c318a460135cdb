#!/usr/bin/env bash
# Where the engine's CPU goes under load: starts the load-test engine (as
# scripts/loadtest.sh does), drives it with `switchboard loadgen` and the
# options given here, records the engine with perf (cpu-clock sampling with
# DWARF call stacks) for PROFILE_SECONDS once PROFILE_WARMUP seconds have
# passed, then prints the engine's CPU per event split by component and by
# thread (scripts/profile-breakdown.py), and what each event costs the
# kernel over the same window (perf stat: fsyncs, writes, reads, futex
# calls, epoll waits, context switches; from /proc: the bytes of pages the
# engine dirtied, and the store's disk's write requests, cache flushes
# and bytes written, machine-wide).
#
#   scripts/profile.sh --rate 3000 --duration 45s --round-robin
#
# Needs perf (Debian's linux-perf) and permission to trace the engine
# (root, or kernel.perf_event_paranoid <= 1).
set -euo pipefail
cd "$(dirname "$0")/.."
WARMUP=${PROFILE_WARMUP:-10}
SECONDS_RECORDED=${PROFILE_SECONDS:-25}
FREQ=${PROFILE_FREQ:-249}
OUT=${PROFILE_OUT:-target/profile}
command -v perf > /dev/null || { echo "perf is not installed (Debian: linux-perf)" >&2; exit 1; }
mkdir -p "$OUT"

. scripts/loadtest-engine.sh
start_loadtest_engine profile-engine.log

messages() {
  curl -fs 127.0.0.1:9464/metrics \
    | awk '/^switchboard_events_total\{/ && /kind="message"/ {n += $NF} END {printf "%d\n", n}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$ENGINE/stat"; }

"$BIN" loadgen --app-secret loadtest-app-secret --page 900000000001 \
  --instagram 900000000002 --whatsapp 900000000003 --gmail support@load.example \
  --customers 100000 "$@" > "$OUT/loadgen.txt" 2>&1 &
LOADGEN=$!
sleep "$WARMUP"
EVENTS0=$(messages)
TICKS0=$(cpu_ticks)
written() { awk '/^write_bytes:/ {print $2}' "/proc/$ENGINE/io"; }
WRITTEN0=$(written)
# The store's disk (the whole disk of a partition: the kernel counts cache
# flushes there only): write requests, sectors written, cache flushes.
SOURCE=$(df --output=source data-loadtest | tail -1)
DISK=$(lsblk -no pkname "$SOURCE" 2> /dev/null | head -1 || true)
DISK=${DISK:-$(basename "$SOURCE")}
disk() { awk -v d="$DISK" '$3 == d {print $8, $10, ($19 == "" ? 0 : $19)}' /proc/diskstats; }
DISK0=$(disk)
COUNTED="syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_pwrite64,syscalls:sys_enter_pread64,context-switches"
perf stat -x, -e "$COUNTED" -p "$ENGINE" -o "$OUT/perf-stat.csv" -- sleep "$SECONDS_RECORDED" &
STAT=$!
perf record -F "$FREQ" --call-graph dwarf,16384 -p "$ENGINE" -o "$OUT/perf.data" \
  -- sleep "$SECONDS_RECORDED" 2> "$OUT/perf-record.log"
wait "$STAT" || true
TICKS1=$(cpu_ticks)
EVENTS1=$(messages)
WRITTEN1=$(written)
DISK1=$(disk)
STATUS=0
wait "$LOADGEN" || STATUS=$?
cat "$OUT/loadgen.txt"
perf script --no-inline -i "$OUT/perf.data" -F comm,period,ip,sym,dso 2> /dev/null \
  | python3 scripts/profile-breakdown.py \
      --events $((EVENTS1 - EVENTS0)) \
      --cpu-seconds "$(echo "($TICKS1 - $TICKS0) / $(getconf CLK_TCK)" | bc -l)" \
  | tee "$OUT/breakdown.txt"
# Per event, from the counts over the window.
awk -F, -v events=$((EVENTS1 - EVENTS0)) -v written=$((WRITTEN1 - WRITTEN0)) \
  -v disk0="$DISK0" -v disk1="$DISK1" '
  /^[0-9]/ { name = $3; sub(/^syscalls:sys_enter_/, "", name); n[name] = $1 }
  END {
    printf "per event (%d events):", events
    for (k in n) printf " %s %.2f", k, n[k] / events
    printf " pages-dirtied-bytes %.0f", written / events
    if (split(disk0, a, " ") < 3 || split(disk1, b, " ") < 3) {
      printf "; disk counters: not found for the store folder\n"
    } else {
      printf "; disk, machine-wide: writes %.2f flushes %.2f bytes %.0f\n", (b[1] - a[1]) / events, (b[3] - a[3]) / events, (b[2] - a[2]) * 512 / events
    }
  }' "$OUT/perf-stat.csv" | tee -a "$OUT/breakdown.txt"
exit "$STATUS"
