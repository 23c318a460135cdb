#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/fuzz_targets) with cargo fuzz and libFuzzer,
# each for SECONDS (default 600), two at a time (one per core), starting
# from the seed corpus in fuzz/seeds (the documented payload shapes) and
# keeping what they learn in fuzz/corpus (not committed). A crash stops
# that target and leaves its input in fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default: every target)
#
# cargo fuzz passes sanitizer flags that need a nightly compiler;
# RUSTC_BOOTSTRAP=1 lets this machine's stable toolchain take them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  mapfile -t TARGETS < <(cd fuzz && cargo fuzz list)
fi
(cd fuzz && cargo fuzz build)
mkdir -p target/fuzz-logs
run() {
  local t=$1
  mkdir -p "fuzz/corpus/$t"
  if (cd fuzz && cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1) \
      > "target/fuzz-logs/$t.log" 2>&1; then
    echo "$t: no crash in ${SECONDS_EACH}s ($(grep -E '^stat::number_of_executed_units' "target/fuzz-logs/$t.log" | awk '{print $2}') runs)"
  else
    echo "$t: FAILED, see target/fuzz-logs/$t.log and fuzz/artifacts/$t/"
    return 1
  fi
}
status=0
for ((i = 0; i < ${#TARGETS[@]}; i += 2)); do
  pids=()
  for t in "${TARGETS[@]:i:2}"; do
    run "$t" & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
done
exit $status
