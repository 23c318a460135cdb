#!/usr/bin/env bash
# Starts a real Kafka-protocol broker (Tansu, in-memory storage) on
# 127.0.0.1 for the tests and prints its bootstrap address on stdout.
# Tansu is installed once with cargo into a cache folder
# ($SWITCHBOARD_TOOLS, default ~/.cache/switchboard) and reused after;
# the first install compiles ~500 crates (15-25 minutes on 2 cores).
#
#   scripts/kafka-broker.sh start   -> prints 127.0.0.1:PORT, pid in $STATE/tansu.pid
#   scripts/kafka-broker.sh stop
#   scripts/kafka-broker.sh path    -> the Tansu binary (installed if missing)
set -euo pipefail

TOOLS=${SWITCHBOARD_TOOLS:-$HOME/.cache/switchboard}
STATE=${SWITCHBOARD_BROKER_STATE:-${TMPDIR:-/tmp}/switchboard-broker}
TANSU=$TOOLS/tansu/bin/tansu
TANSU_VERSION=${TANSU_VERSION:-0.6.0}

install() {
  if [ -x "$TANSU" ]; then
    return
  fi
  echo "Installing Tansu $TANSU_VERSION into $TOOLS/tansu (once; cached afterwards)" >&2
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore \
    --root "$TOOLS/tansu" >&2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
  install
  mkdir -p "$STATE"
  local port
  port=$(free_port)
  "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "memory://tansu/" \
    > "$STATE/tansu.log" 2>&1 &
  echo $! > "$STATE/tansu.pid"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "127.0.0.1:$port"
      return
    fi
    sleep 0.1
  done
  echo "Tansu did not start; its log: $STATE/tansu.log" >&2
  cat "$STATE/tansu.log" >&2 || true
  exit 1
}

stop() {
  if [ -f "$STATE/tansu.pid" ]; then
    kill "$(cat "$STATE/tansu.pid")" 2>/dev/null || true
    rm -f "$STATE/tansu.pid"
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  path) install; echo "$TANSU" ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
