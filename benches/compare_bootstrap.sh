#!/usr/bin/env bash
# Bootstrapping `debian-bookworm` with `nua-pack base build` against `mmdebstrap` making the
# same package set (Essential + apt + ca-certificates), in one run.
#
#   nua cold        empty cache: download every .deb, write the package layer, run the
#                   maintainer scripts in the sandbox, the nua layer, the image tarball
#   nua warm debs   the .debs already in the blob store, no layer cached
#   nua warm        everything cached (a second `base build`)
#   mmdebstrap      `mmdebstrap --variant=essential --include=apt,ca-certificates`, to a tarball
#                   (it keeps no cache between runs)
#
#   benches/compare_bootstrap.sh        # RUNS=3 by default; prints a Markdown table
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/lib.sh
RUNS=${RUNS:-3}
mirror=$(apt_mirror)

cargo build --release --locked --bin nua-pack >/dev/null 2>&1
pack=$PWD/target/release/nua-pack
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

nua() { NUA_CACHE_DIR=$1 "$pack" base build debian-bookworm -q -o "$work/nua.tar"; }
# Keep the blobs (the .debs among them), drop every cached layer and unpacked root.
drop_layers() { rm -rf "$1/layers" "$1/sandbox"; }
mmdebstrap_run() {
    mmdebstrap --quiet --variant=essential --include=apt,ca-certificates \
        bookworm "$work/mm.tar" "$mirror"
}

declare -A t
for i in $(seq 1 "$RUNS"); do
    t[cold]+="$(time_it nua "$work/cache-$i") "
    t[warm]+="$(time_it nua "$work/cache-$i") "
    drop_layers "$work/cache-$i"
    t[debs]+="$(time_it nua "$work/cache-$i") "
    t[mm]+="$(time_it mmdebstrap_run) "
    rm -rf "$work/cache-$i"
done
m() { tr ' ' '\n' <<<"${t[$1]}" | grep . | median; }
size() { du -m "$1" | cut -f1; }

echo "| debian-bookworm (median of $RUNS) | seconds |"
echo "|---|---|"
echo "| nua-pack base build, cold (downloads included) | $(m cold) |"
echo "| nua-pack base build, .debs cached, layers not | $(m debs) |"
echo "| nua-pack base build, warm | $(m warm) |"
echo "| mmdebstrap --variant=essential --include=apt,ca-certificates | $(m mm) |"
echo
echo "tarballs: nua $(size "$work/nua.tar") MB (gzip layers), mmdebstrap $(size "$work/mm.tar") MB (plain tar)"
