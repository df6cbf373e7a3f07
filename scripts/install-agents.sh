#!/usr/bin/env bash
# Install the agent CLIs hotplex drives, at the versions their wire formats
# were verified with (../shared/spec/workers.md), into a project-local prefix
# (.tools/npm) so nothing global changes. Prints the bin directory to add to PATH.
#
# usage: scripts/install-agents.sh [all]    (default: the agents this build supports)
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX="${HOTPLEX_TOOLS:-$PWD/.tools}/npm"
# Pinned versions (workers.md "Versions tested"): change only after re-verifying the formats.
CLAUDE="@anthropic-ai/claude-code@2.1.197"
OPENCODE="opencode-ai@1.18.33"
CLAUDE_ACP="@zed-industries/claude-code-acp@0.16.2"
PI="@mariozechner/pi-coding-agent@0.73.1"

pkgs=("$CLAUDE")
bins=(claude)
if [[ "${1:-}" == "all" ]]; then
  pkgs+=("$OPENCODE" "$CLAUDE_ACP" "$PI")
  bins+=(opencode claude-code-acp pi)
fi

if ! command -v npm >/dev/null; then
  echo "install-agents: npm is required (Node.js 20+)" >&2
  exit 1
fi

mkdir -p "$PREFIX"
stamp="$PREFIX/.installed"
want="${pkgs[*]}"
installed() {
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] || return 1
  for b in "${bins[@]}"; do
    [[ -x "$PREFIX/node_modules/.bin/$b" ]] || return 1
  done
}
if installed; then
  echo "$PREFIX/node_modules/.bin"
  exit 0
fi
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "${pkgs[@]}" >&2
echo "$want" > "$stamp"
for b in "${bins[@]}"; do
  # Native binaries arrive through postinstall steps (opencode-ai): check they
  # run. claude-code-acp has no --version (it would serve ACP on stdin).
  case "$b" in
    claude | opencode | pi) "$PREFIX/node_modules/.bin/$b" --version </dev/null >&2 ;;
  esac
done
echo "$PREFIX/node_modules/.bin"
