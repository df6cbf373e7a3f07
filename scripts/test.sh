#!/usr/bin/env bash
# The whole test suite on a fresh machine (needs only Rust, Node/npm, Python 3):
# installs the pinned agent CLIs locally, then runs formatting, lint, unit,
# black-box and real-CLI tests, and checks the shipped dev config.
#
# usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR="$(scripts/install-agents.sh all)"
export PATH="$BIN_DIR:$PATH"
# Python tools for the tests (fake OTLP collector, hadolint), pinned, in .tools/py.
PY_BIN="$(scripts/install-py-tools.sh)"
export HOTPLEX_PY="$PY_BIN/python" HOTPLEX_HADOLINT="$PY_BIN/hadolint"
# nginx and promtool for the deployment tests (Debian packages), only when missing.
if ! { command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]]; } || ! command -v promtool >/dev/null; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light prometheus >&2
  else
    echo "test.sh: nginx/promtool missing and apt-get not usable (not root?); deploy tests will fail" >&2
  fi
fi
command -v python3 >/dev/null || { echo "test.sh: python3 is required (mock model server)" >&2; exit 1; }

echo "== mock model self-test"
python3 scripts/mock_model.py --self-test

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --locked --no-fail-fast --lib --bins --tests -- --test-threads="${HOTPLEX_TEST_THREADS:-2}"

echo "== benches run once each in criterion's test mode"
# criterion's own harness: it takes no libtest flags such as --test-threads
cargo test --locked --benches

echo "== fuzz targets, 10 s each (security.md §13)"
scripts/fuzz.sh 10

echo "== shipped dev config"
cargo run --quiet --locked --bin hotplex -- --check-config --config configs/config-dev.yaml

echo "all tests passed"
