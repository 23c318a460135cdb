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
