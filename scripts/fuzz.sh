#!/usr/bin/env bash
# Run every cargo-fuzz target for N seconds each (default 10), one after the
# other (security.md §13: PR CI 10 s per target, a scheduled job ≥ 30 min).
#
#   scripts/fuzz.sh [seconds] [target...]
#
# Stable toolchain: RUSTC_BOOTSTRAP=1 unlocks -Zsanitizer=address (stable ships
# the ASan runtime). Built with `--dev`: the fuzz crate's dev profile is
# optimized (fuzz/Cargo.toml), so no release build of the main crate happens.
# New inputs go to a scratch corpus outside the repo; the committed seeds in
# fuzz/corpus/<target>/ are only read. A crash leaves its input in
# fuzz/artifacts/<target>/: copy it to fuzz/regressions/<target>/ with the fix,
# so tests/fuzz_corpus.rs replays it on every `cargo test`.
set -euo pipefail
secs="${1:-10}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

targets=(aep_decode http_head ws_handshake claude_line line_splitter ssrf_url)
features=()
# The JWT target needs the authentication modules (enabled once merged).
if grep -qs 'pub fn fuzz_jwt' src/security/jwt.rs; then
  targets+=(jwt)
  features=(--features auth)
fi
if [ "$#" -gt 0 ]; then targets=("$@"); fi

target_dir="${CARGO_TARGET_DIR:-$root/fuzz/target}/fuzz"
scratch="${CARGO_TARGET_DIR:-$root/fuzz/target}/fuzz-corpus"
export RUSTC_BOOTSTRAP=1

status=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "fuzz/corpus/$t"
  echo "== $t: ${secs}s"
  if ! cargo fuzz run --dev "${features[@]}" --target-dir "$target_dir" "$t" \
      "$scratch/$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1; then
    echo "fuzz.sh: $t FAILED (input in fuzz/artifacts/$t/)" >&2
    status=1
  fi
done
exit $status
