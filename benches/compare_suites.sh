#!/usr/bin/env bash
# `debian-bookworm` cold with the three suites bases resolve over now (bookworm,
# bookworm-updates, bookworm-security: issue 14) against the single suite of before
# (`suites = ["bookworm"]` in a copy of base-images/, locked again), in one run.
#
#   lock      `nua-pack base lock debian-bookworm`, empty cache: fetch and verify each
#             suite's InRelease and Packages.xz, resolve
#   build     `nua-pack base build debian-bookworm -o FILE` from that lock, empty cache:
#             download every .deb, both layers, the image tarball
#
#   benches/compare_suites.sh        # RUNS=3 by default; prints a Markdown table
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
RUNS=${RUNS:-3}

cargo build --release --locked --bin nua-pack >/dev/null 2>&1
pack=${CARGO_TARGET_DIR:-$PWD/target}/release/nua-pack
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Two copies of the definitions: the three suites (the default) and bookworm alone.
for variant in three one; do
    mkdir -p "$work/$variant"
    cp -r base-images layers "$work/$variant/"
done
sed -i 's/^\[bootstrap\]$/[bootstrap]\nsuites = ["bookworm"]/' \
    "$work/one/base-images/debian-bookworm.toml"

lock() {
    NUA_BASE_IMAGES=$work/$1/base-images NUA_CACHE_DIR=$2 "$pack" base lock debian-bookworm
}
build() {
    NUA_BASE_IMAGES=$work/$1/base-images NUA_CACHE_DIR=$2 \
        "$pack" base build debian-bookworm -q -o "$work/$1.tar"
}

declare -A t
for i in $(seq 1 "$RUNS"); do
    for variant in three one; do
        t[lock-$variant]+="$(time_it lock "$variant" "$work/lock-$variant-$i") "
        rm -rf "$work/lock-$variant-$i"
        t[build-$variant]+="$(time_it build "$variant" "$work/build-$variant-$i") "
        rm -rf "$work/build-$variant-$i"
    done
done
m() { tr ' ' '\n' <<<"${t[$1]}" | grep . | median; }
count() { grep -c '^\[\[step.package\]\]' "$work/$1/base-images/debian-bookworm.lock"; }
security() { grep -c '^suite = "bookworm-security"' "$work/$1/base-images/debian-bookworm.lock"; }
size() { du -m "$work/$1.tar" | cut -f1; }

echo "| debian-bookworm, cold (median of $RUNS) | bookworm alone | + updates + security |"
echo "|---|---|---|"
echo "| \`nua-pack base lock\` (indexes fetched, resolved) | $(m lock-one) | $(m lock-three) |"
echo "| \`nua-pack base build -o\` from the lock | $(m build-one) | $(m build-three) |"
echo "| packages (from bookworm-security) | $(count one) (0) | $(count three) ($(security three)) |"
echo "| image tarball, MB | $(size one) | $(size three) |"
