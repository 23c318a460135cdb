#!/usr/bin/env bash
# Runs the whole switchboard test suite on a fresh machine: unit tests and
# the integration binary (tests/it), which starts the engine, a fake Graph
# API and the simulator on 127.0.0.1, and a real Kafka-protocol broker
# (Tansu, installed once into ~/.cache/switchboard by
# scripts/kafka-broker.sh). To use another Kafka instead, set
# SWITCHBOARD_TEST_KAFKA=host:port. Uses cargo-nextest when present, plain
# cargo test otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (https://rustup.rs); it is not installed on this machine" >&2
  exit 1
fi

if [ -z "${SWITCHBOARD_TEST_KAFKA:-}" ]; then
  # A state folder of this run's own: runs side by side stop their own broker.
  SWITCHBOARD_BROKER_STATE=$(mktemp -d)
  export SWITCHBOARD_BROKER_STATE
  SWITCHBOARD_TEST_KAFKA=$(scripts/kafka-broker.sh start)
  export SWITCHBOARD_TEST_KAFKA
  export SWITCHBOARD_TEST_KAFKA_IS_TANSU=1
  SWITCHBOARD_TANSU_BIN=$(scripts/kafka-broker.sh path)
  export SWITCHBOARD_TANSU_BIN
  trap 'scripts/kafka-broker.sh stop; rm -rf "$SWITCHBOARD_BROKER_STATE"' EXIT
  echo "Kafka-protocol broker (Tansu) on $SWITCHBOARD_TEST_KAFKA"
fi

# A real SMTP server for the alert tests: aiosmtpd from PyPI, in a venv
# of its own under ~/.cache/switchboard (installed once).
if [ -z "${SWITCHBOARD_TEST_SMTP_PYTHON:-}" ]; then
  SMTP_VENV=${SWITCHBOARD_TOOLS:-$HOME/.cache/switchboard}/smtp-venv
  if ! "$SMTP_VENV/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
    echo "Installing aiosmtpd into $SMTP_VENV (once; cached afterwards)"
    python3 -m venv "$SMTP_VENV"
    "$SMTP_VENV/bin/pip" install --quiet aiosmtpd
  fi
  export SWITCHBOARD_TEST_SMTP_PYTHON="$SMTP_VENV/bin/python"
fi

# Installs Debian's package $2 when the command $1 is missing (as root with
# apt-get; else the tests that need it say they are skipped).
apt_install() {
  command -v "$1" >/dev/null 2>&1 && return 0
  { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; } || return 0
  echo "Installing Debian's $2 (once)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null \
    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; } \
    || echo "$2 could not be installed: the tests that need it will be skipped"
}

# The monitoring tests: Debian's prometheus (the server and promtool).
apt_install promtool prometheus

# The browser tests (web chat widget, operators' console): Debian's Chromium
# and playwright-core from npm (into ~/.cache/switchboard/browser, once).
# Never a downloaded browser.
if [ -z "${SWITCHBOARD_TEST_CHROMIUM:-}" ]; then
  apt_install chromium chromium
  if command -v chromium >/dev/null 2>&1; then
    export SWITCHBOARD_TEST_CHROMIUM
    SWITCHBOARD_TEST_CHROMIUM=$(command -v chromium)
  fi
fi
if [ -z "${SWITCHBOARD_TEST_PLAYWRIGHT:-}" ] && command -v npm >/dev/null 2>&1; then
  BROWSER_TOOLS=${SWITCHBOARD_TOOLS:-$HOME/.cache/switchboard}/browser
  if [ ! -f "$BROWSER_TOOLS/node_modules/playwright-core/index.mjs" ]; then
    echo "Installing playwright-core into $BROWSER_TOOLS (once; cached afterwards)"
    mkdir -p "$BROWSER_TOOLS"
    (cd "$BROWSER_TOOLS" && npm install --silent --no-audit --no-fund playwright-core@1 >/dev/null) \
      || echo "playwright-core could not be installed: the browser test will be skipped"
  fi
  if [ -f "$BROWSER_TOOLS/node_modules/playwright-core/index.mjs" ]; then
    export SWITCHBOARD_TEST_PLAYWRIGHT="$BROWSER_TOOLS/node_modules"
  fi
fi

# The store conformance suite's real-ScyllaDB runs are #[ignore]d: they run
# only when SCYLLA_URI names a ScyllaDB, and show as skipped otherwise.
IGNORED=()
if [ -n "${SCYLLA_URI:-}" ]; then
  echo "ScyllaDB at $SCYLLA_URI: the store conformance suite runs against it too"
  IGNORED=(--run-ignored all)
else
  echo "SCYLLA_URI not set: the store conformance suite's real-ScyllaDB runs are skipped (see README, Testing)"
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "${IGNORED[@]}"
else
  if [ -n "${SCYLLA_URI:-}" ]; then
    cargo test --no-fail-fast -- --include-ignored
  else
    cargo test --no-fail-fast
  fi
fi
