#!/usr/bin/env bash
# Runs the whole switchboard test suite on a fresh machine: unit tests and
# the integration binary (tests/it), which starts the engine and a fake
# Graph API on 127.0.0.1. Installs nothing it does not need; uses
# cargo-nextest when present, plain cargo test otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (https://rustup.rs); it is not installed on this machine" >&2
  exit 1
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast
else
  cargo test --no-fail-fast
fi
