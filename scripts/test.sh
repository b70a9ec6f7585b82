#!/usr/bin/env bash
# The whole test suite, as CI runs it: prepare the machine (packages, dockerd, the cached base
# root filesystem), run every test, then stop the dockerd this run started, if any.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/test-env.sh setup
started_here=false
[ -f "${NUA_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nua-tests}/state/dockerd.pid" ] && started_here=true
cleanup() {
    if $started_here; then bash scripts/test-env.sh stop; fi
}
trap cleanup EXIT

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo build --locked --no-default-features --bin nua-pack
cargo test --locked --all-targets "$@"
