#!/usr/bin/env bash
# What a change costs a contributor on this machine: the test binaries rebuilt after touching
# one file of the orchestrator and one of the OCI library, in this tree (a workspace of crates)
# and in an older revision (one crate; default: the last commit before the workspace). Each
# tree is checked out apart and built once first; the target folder is shared, so third-party
# crates are built once. Prints a markdown table.
#
# Usage: bash benches/compare_rebuild.sh [OLD_REV]
#        CLEAN=1 bash benches/compare_rebuild.sh   # also clean `cargo build --release` and
#                                                  # `cargo test --no-run` of this tree
set -euo pipefail
cd "$(dirname "$0")/.."
old_rev=${1:-}
if [ -z "${1:-}" ]; then
    # The parent of the commit that made the workspace.
    first=$(git log --format=%H --diff-filter=A -- crates/nua-oci/Cargo.toml | tail -n 1)
    old_rev=$(git rev-parse "$first^")
fi
work=$(mktemp -d)
trap 'git worktree remove --force "$work/old" >/dev/null 2>&1 || true; git worktree remove --force "$work/new" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/old" "$old_rev" >/dev/null 2>&1
git worktree add --detach "$work/new" HEAD >/dev/null 2>&1
# TARGET: a target folder whose third-party crates are built already, to skip that part.
export CARGO_TARGET_DIR="${TARGET:-$work/target}"

seconds() { # COMMAND…: wall-clock seconds of a command, its output hidden
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s.%N)
    echo "$end - $start" | bc | xargs printf '%.1f'
}

test_no_run() { # TREE
    (cd "$1" && cargo test --workspace --all-targets --no-run --quiet)
}

echo "| tree | change | cargo test --no-run (s) |"
echo "|---|---|---|"
for tree in old new; do
    dir="$work/$tree"
    if [ "$tree" = old ]; then
        files=(src/deploy/local.rs src/oci/digest.rs)
        label="one crate ($(git rev-parse --short "$old_rev"))"
    else
        files=(crates/nua-deploy/src/local.rs crates/nua-oci/src/digest.rs)
        label="workspace ($(git rev-parse --short HEAD))"
    fi
    first=$(seconds test_no_run "$dir")
    echo "| $label | first build of the tree (third-party crates already built) | $first |"
    for file in "${files[@]}"; do
        echo "// touched" >> "$dir/$file"
        echo "| $label | one line added to \`$file\` | $(seconds test_no_run "$dir") |"
    done
done

if [ "${CLEAN:-}" = 1 ]; then
    # The same commands for both trees: the binaries, and every test binary.
    for what in "build --release" "test --workspace --all-targets --no-run"; do
        export CARGO_TARGET_DIR="$work/clean-$RANDOM"
        # shellcheck disable=SC2086
        echo "| workspace | clean \`cargo $what\` | $(seconds bash -c "cd '$work/new' && cargo $what --quiet") |"
        rm -rf "$CARGO_TARGET_DIR"
    done
fi
