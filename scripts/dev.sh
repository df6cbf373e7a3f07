#!/usr/bin/env bash
# Run the gateway in development mode (loopback, no auth, ./data) on
# ws://127.0.0.1:8888/ws. With ANTHROPIC_API_KEY set, agents talk to the real
# model; without it (or with --offline) the project's mock model server is
# started and the agents are pointed at it, so everything works offline.
#
# usage: scripts/dev.sh [--offline]
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR="$(scripts/install-agents.sh)"
export PATH="$BIN_DIR:$PATH"
cargo build --release --bins

offline=0
if [[ "${1:-}" == "--offline" ]]; then offline=1; shift; fi
[[ -z "${ANTHROPIC_API_KEY:-}" ]] && offline=1
if [[ $offline == 1 ]]; then
  mkdir -p data
  python3 scripts/mock_model.py --port 0 --port-file data/mock_model.port --quiet > /dev/null &
  MOCK_PID=$!
  trap 'kill $MOCK_PID 2>/dev/null || true' EXIT
  for _ in $(seq 50); do [[ -s data/mock_model.port ]] && break; sleep 0.1; done
  export ANTHROPIC_BASE_URL="http://127.0.0.1:$(cat data/mock_model.port)"
  export ANTHROPIC_API_KEY="sk-offline-mock"
  echo "offline: agents use the mock model at $ANTHROPIC_BASE_URL" >&2
fi
target/release/hotplex --dev "$@"
