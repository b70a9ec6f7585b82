#!/usr/bin/env bash
# The whole test suite, as CI runs it: prepare the machine (packages, dockerd, the cached base
# root filesystem), run every test, then stop the dockerd this run started, if any.
set -euo pipefail
cd "$(dirname "$0")/.."

# test-env.sh records the pid of a dockerd it starts; stop it afterwards only when this run
# is the one that started it (a daemon that was already answering is left alone).
pidfile="${NUA_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nua-tests}/state/dockerd.pid"
before=$(cat "$pidfile" 2>/dev/null || true)
bash scripts/test-env.sh setup
after=$(cat "$pidfile" 2>/dev/null || true)
cleanup() {
    if [ -n "$after" ] && [ "$after" != "$before" ]; then bash scripts/test-env.sh stop; fi
}
trap cleanup EXIT

cargo fmt --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# nua-pack is made of nua-build and what it depends on: none of it may depend on the run side
# (tests/binaries.rs checks the binary itself).
if cargo tree --locked -e normal --prefix none -p nua-build | grep -E '^(bollard|nua-runtime|nua-deploy) '; then
    echo "error: a library of nua-pack depends on the run side" >&2
    exit 1
fi
cargo test --workspace --locked --all-targets "$@"
