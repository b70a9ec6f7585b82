#!/usr/bin/env bash
# Compare the layer writer with `tar | gzip -6` and `tar | pigz` on one generated tree, in
# one run, and print a Markdown table (wall time, throughput, peak RSS, output size).
#
#   benches/compare_layer_writer.sh            # ~1 GiB tree
#   SIZE_MIB=256 benches/compare_layer_writer.sh
#
# Needs GNU time (`apt-get install -y time pigz`). The tree is generated deterministically
# by `crates/nua-oci/examples/write_layer.rs gen` and the page cache is warmed before timing, so every tool
# reads from memory. Peak RSS of a pipeline is the largest of its processes.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
cd "$(dirname "$0")/.."
for tool in /usr/bin/time pigz gzip tar; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y time pigz" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/layer-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

cargo build --quiet --release -p nua-oci --example write_layer
BIN=target/release/examples/write_layer
"$BIN" gen "$WORK/tree" "$SIZE_MIB"
INPUT=$(du -sb "$WORK/tree" | cut -f1)
FILES=$(find "$WORK/tree" -type f | wc -l)
tar -c -C "$WORK/tree" . >/dev/null # warm the page cache

# measure NAME OUTPUT COMMAND...: time one run, append a table row.
ROWS=()
measure() {
    local name=$1 output=$2
    shift 2
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@"
    read -r secs rss_kib <"$WORK/time"
    local size
    size=$(du -sb "$output" | cut -f1)
    ROWS+=("$(awk -v n="$name" -v s="$secs" -v r="$rss_kib" -v o="$size" -v i="$INPUT" \
        'BEGIN { printf "| %s | %.2f | %.0f | %.1f | %.1f |", n, s, i / s / 1048576, r / 1024, o / 1048576 }')")
}

measure "nua LayerWriter gzip-6" "$WORK/store-gz/blobs" \
    "$BIN" write "$WORK/tree" "$WORK/store-gz" gzip 6
measure "nua LayerWriter parallel gzip-6" "$WORK/store-pgz/blobs" \
    "$BIN" write "$WORK/tree" "$WORK/store-pgz" pgzip 6
measure "nua LayerWriter zstd-3" "$WORK/store-zst/blobs" \
    "$BIN" write "$WORK/tree" "$WORK/store-zst" zstd 3
measure "tar -c \| gzip -6" "$WORK/gzip.tar.gz" \
    bash -c "tar -c --sort=name -C '$WORK/tree' . | gzip -6 > '$WORK/gzip.tar.gz'"
measure "tar -c \| pigz -6 ($(nproc) threads)" "$WORK/pigz.tar.gz" \
    bash -c "tar -c --sort=name -C '$WORK/tree' . | pigz -6 > '$WORK/pigz.tar.gz'"

echo
echo "input: $((INPUT / 1048576)) MiB in $FILES files; $(nproc) cores; $(uname -m)"
echo
echo "| tool | wall s | input MiB/s | peak RSS MiB | output MiB |"
echo "|---|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
