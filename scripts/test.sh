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
cargo build --locked --no-default-features --bin nua-pack
cargo test --workspace --locked --all-targets "$@"
