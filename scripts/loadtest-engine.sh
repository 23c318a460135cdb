# Sourced by scripts/loadtest.sh and scripts/memory.sh: builds the release
# binary and starts `switchboard serve --config config/loadtest.toml` on a
# fresh store, logging to target/$1; sets BIN and ENGINE (its pid), stops
# it on exit, and returns once it is ready. Environment overrides set by the
# caller (SWITCHBOARD__...) reach the engine. LOADTEST_ASSISTANT=llm answers
# with the config's model assistant (the sink's fake model) instead of rules.
# SWITCHBOARD_BIN runs that binary instead of building this checkout (to
# compare two builds on the same machine). LOADTEST_CONFIG runs that config
# file instead (scripts/soak.sh writes one).
start_loadtest_engine() {
  if [ -n "${SWITCHBOARD_BIN:-}" ]; then
    BIN=$SWITCHBOARD_BIN
  else
    cargo build --release --quiet
    BIN=target/release/switchboard
  fi
  rm -rf data-loadtest
  mkdir -p target
  local config=config/loadtest.toml
  if [ -n "${LOADTEST_CONFIG:-}" ]; then
    config=$LOADTEST_CONFIG
  elif [ -n "${LOADTEST_ASSISTANT:-}" ]; then
    config=target/loadtest-$LOADTEST_ASSISTANT.toml
    sed "s/^assistant = \"support\"/assistant = \"$LOADTEST_ASSISTANT\"/" config/loadtest.toml > "$config"
  fi
  "$BIN" serve --config "$config" > "target/$1" 2>&1 &
  ENGINE=$!
  # Stopped on exit, and waited for: the next run's engine needs its
  # ports and a store folder no engine is still writing.
  trap 'kill "$ENGINE" 2>/dev/null && wait "$ENGINE" 2>/dev/null; true' EXIT
  for _ in $(seq 1 100); do
    curl -fs 127.0.0.1:8080/readyz > /dev/null 2>&1 && break
    sleep 0.1
  done
}
