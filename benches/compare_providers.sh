#!/usr/bin/env bash
# Nua's provider images (`postgres-15`, `mariadb-10.11`, `redis-7`, issue 14): how long
# `nua-pack base build NAME --output X.tar` takes and how large the image is, against the
# compressed size of the official Docker Hub image each replaces (Docker Hub is out of reach
# here: the sizes are the ones the issue gives, linux/amd64 as `docker manifest inspect`
# sums its layers).
#
#   cold         an empty cache: download every .deb, bootstrap debian-bookworm, the
#                provider's layers, the image tarball
#   on the base  debian-bookworm already in the cache (as on any machine that built an app),
#                only the provider's layers
#   size         the image tarball: its gzip layers (what a registry stores and a pull
#                moves) and its manifest and config
#
#   benches/compare_providers.sh          # RUNS=3 by default; prints a Markdown table
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/lib.sh
RUNS=${RUNS:-3}

target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked --bin nua-pack >/dev/null 2>&1
pack=$target/release/nua-pack
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() { NUA_CACHE_DIR=$1 "$pack" base build "$2" -q -o "$work/$2.tar"; }

declare -A t
providers=(postgres-15 mariadb-10.11 redis-7)
for i in $(seq 1 "$RUNS"); do
    for p in "${providers[@]}"; do
        rm -rf "$work/cache"
        t[cold-$p]+="$(time_it build "$work/cache" "$p") "
    done
    rm -rf "$work/base"
    build "$work/base" debian-bookworm
    for p in "${providers[@]}"; do
        rm -rf "$work/cache"
        cp -a "$work/base" "$work/cache"
        t[base-$p]+="$(time_it build "$work/cache" "$p") "
    done
done
m() { tr ' ' '\n' <<<"${t[$1]}" | grep . | median; }
# The compressed size: the image tarball of the last build, its gzip layers and two small
# JSON files.
size() { echo "$(stat -c %s "$work/$1.tar") / 1000000" | bc; }
declare -A official=([postgres-15]="~150 (postgres:15)" [mariadb-10.11]="~120 (mariadb:10.11)"
    [redis-7]="~40 (redis:7)")

echo "| image (median of $RUNS) | cold, s | on a cached debian-bookworm, s | compressed MB | official image, compressed MB |"
echo "|---|---|---|---|---|"
for p in "${providers[@]}"; do
    echo "| \`$p\` | $(m "cold-$p") | $(m "base-$p") | $(size "$p") | ${official[$p]} |"
done
