#!/usr/bin/env bash
# Website chat under load on this machine, everything on 127.0.0.1: starts
# the release engine with config/loadtest.toml on a fresh store, opens N
# visitor sockets at once (each asks one question and waits for its
# answer), and prints answers, latency and the engine's memory per open
# socket.
#
#   scripts/websockets.sh 5000
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
shift || true
# Many sockets: room for their file descriptors on both sides.
ulimit -n 65536 2>/dev/null || true
. scripts/loadtest-engine.sh
start_loadtest_engine websockets-engine.log
"$BIN" loadgen --app-secret loadtest-app-secret --web-visitors "$N" --engine-pid "$ENGINE" "$@"
