#!/usr/bin/env bash
# `nua-pack push` and `nua-pack pull` of an image of about 500 MB to and from a local
# reference registry (`docker-registry`, no auth, plain HTTP on 127.0.0.1), against
# `skopeo copy` doing the same, in one run; plus what a second push of the same image and a
# push of an image sharing its base upload. Prints a Markdown table.
#
#   benches/compare_registry.sh            # RUNS=3 by default; BASE_MIB=400 APP_MIB=100
#
# The images: made with umoci (an independent tool, so neither side pushes its own output),
# from files of /dev/urandom (incompressible: gzip keeps the blobs at their size and the
# numbers measure transfer, not compression):
#   a = base layer (BASE_MIB, 40 files) + app layer "a" (APP_MIB, 10 files)
#   b = the same base layer + app layer "b" (APP_MIB, other random files)
# Each is split into its own OCI layout (skopeo oci→oci copies blobs as they are, same
# digests); nua-pack pushes the tarball of that layout (`tar -cf`, an `oci-archive`), skopeo
# pushes the layout directory itself (`oci:DIR:TAG`, no extraction). Pulls write a tarball on
# both sides: nua-pack `-o X.tar`, skopeo `oci-archive:X.tar` (it assembles the archive in a
# temporary folder, which is its normal way of writing one).
#
# Every timed push starts from an empty registry (fresh storage), every nua-pack pull from an
# empty cache, so nothing is found already there. skopeo's blob-info cache may remember
# blobs from an earlier run and try a cross-repository mount first; on an empty registry that
# fails fast and it uploads.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/lib.sh
RUNS=${RUNS:-3}
BASE_MIB=${BASE_MIB:-400}
APP_MIB=${APP_MIB:-100}

# Bytes `nua-pack push --json` sent: its `uploaded` is the sum of the blobs it uploaded
# (layers and config; blobs already there or mounted count 0).
PUSH_JSON_UPLOADED=${PUSH_JSON_UPLOADED:-'.uploaded'}

for tool in docker-registry skopeo umoci jq curl; do
    command -v "$tool" >/dev/null || { log "missing $tool: run scripts/test-env.sh setup"; exit 1; }
done
cargo build --release --locked --bin nua-pack >/dev/null 2>&1
pack=$PWD/target/release/nua-pack

work=$(mktemp -d "${TMPDIR:-/tmp}/registry-bench.XXXXXX")
registry_pid=
stop_registry() {
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
        registry_pid=
    fi
}
trap 'stop_registry; rm -rf "$work"' EXIT

# start_registry: a registry with empty storage on a free port; sets $host.
start_registry() {
    stop_registry
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    rm -rf "$work/storage"
    cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/storage
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: nua-bench
EOF
    docker-registry serve "$work/registry.yml" >>"$work/registry.log" 2>&1 &
    registry_pid=$!
    host=127.0.0.1:$port
    for _ in $(seq 1 100); do
        curl -fsS "http://$host/v2/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "the registry did not come up; its log:"
    tail -n 20 "$work/registry.log" >&2
    exit 1
}

# random_files DIR MIB COUNT: COUNT files of /dev/urandom making MIB MiB in all.
random_files() {
    mkdir -p "$1"
    local i
    for i in $(seq 1 "$3"); do
        head -c "$(($2 * 1024 * 1024 / $3))" /dev/urandom >"$1/f$i"
    done
}

log "making the images (${BASE_MIB} MiB base + ${APP_MIB} MiB app layer) with umoci"
random_files "$work/files/base" "$BASE_MIB" 40
random_files "$work/files/a" "$APP_MIB" 10
random_files "$work/files/b" "$APP_MIB" 10
umoci init --layout "$work/umoci"
umoci new --image "$work/umoci:base"
umoci insert --rootless --image "$work/umoci:base" "$work/files/base" /data/base
for app in a b; do
    umoci tag --image "$work/umoci:base" "$app"
    umoci insert --rootless --image "$work/umoci:$app" "$work/files/$app" "/data/$app"
    skopeo --insecure-policy copy -q "oci:$work/umoci:$app" "oci:$work/$app:$app"
    tar -C "$work/$app" -cf "$work/$app.tar" .
done
rm -rf "$work/umoci" "$work/files"
image_mib=$(du -sm "$work/a/blobs" | cut -f1)
b_app_bytes=$(jq -r '.layers[-1].size' "$work/b/blobs/sha256/$(jq -r '.manifests[0].digest' "$work/b/index.json" | cut -d: -f2)")

skopeo_() { skopeo --insecure-policy "$@"; }
# Each run's pushes share one cache (fresh at the run's start): the first push imports the
# tarball into it, later ones find the blobs there and the mount hints of earlier pushes.
nua_push() {
    NUA_CACHE_DIR=$work/push-cache "$pack" push "$work/$1.tar" "$host/bench/$1:1" \
        --insecure-registry "$host" -q
}
nua_pull() {
    rm -rf "$work/cache" "$work/pulled.tar"
    NUA_CACHE_DIR=$work/cache "$pack" pull "$host/bench/a:1" -o "$work/pulled.tar" \
        --insecure-registry "$host" -q
}
# The same pull again into the same cache: every blob is there, and each is hashed again
# before it is trusted (a copy damaged on disk is moved aside and downloaded anew).
nua_repull() {
    rm -f "$work/pulled.tar"
    NUA_CACHE_DIR=$work/cache "$pack" pull "$host/bench/a:1" -o "$work/pulled.tar" \
        --insecure-registry "$host" -q
}
skopeo_push() { skopeo_ copy -q --dest-tls-verify=false "oci:$work/$1:$1" "docker://$host/bench/$1:1"; }
skopeo_pull() {
    rm -f "$work/pulled.tar"
    skopeo_ copy -q --src-tls-verify=false "docker://$host/bench/a:1" "oci-archive:$work/pulled.tar:a"
}

declare -A t
for i in $(seq 1 "$RUNS"); do
    for tool in nua skopeo; do
        start_registry
        rm -rf "$work/push-cache"
        t[${tool}_push]+="$(time_it ${tool}_push a) "
        t[${tool}_pull]+="$(time_it ${tool}_pull) "
        if [ "$tool" = nua ]; then t[nua_repull]+="$(time_it nua_repull) "; fi
        t[${tool}_again]+="$(time_it ${tool}_push a) "
        t[${tool}_shared]+="$(time_it ${tool}_push b) "
    done
done

# What nua-pack sends, once: a second push of `a`, then `b` (sharing a's base) after it.
start_registry
rm -rf "$work/push-cache"
nua_push a
again_json=$(NUA_CACHE_DIR=$work/push-cache "$pack" push "$work/a.tar" "$host/bench/a:1" \
    --insecure-registry "$host" --json)
shared_json=$(NUA_CACHE_DIR=$work/push-cache "$pack" push "$work/b.tar" "$host/bench/b:1" \
    --insecure-registry "$host" --json)
again_bytes=$(jq -r "$PUSH_JSON_UPLOADED" <<<"$again_json")
shared_bytes=$(jq -r "$PUSH_JSON_UPLOADED" <<<"$shared_json")
stop_registry

m() { tr ' ' '\n' <<<"${t[$1]}" | grep . | median; }
echo "| operation (image of ${image_mib} MB) | \`nua-pack\` | \`skopeo copy\` |"
echo "|---|---:|---:|"
echo "| push to an empty registry | $(m nua_push) s | $(m skopeo_push) s |"
echo "| pull into a tarball (empty cache) | $(m nua_pull) s | $(m skopeo_pull) s |"
echo "| pull again (every blob cached, each verified) | $(m nua_repull) s | — |"
echo "| push the same image again | $(m nua_again) s | $(m skopeo_again) s |"
echo "| push an image sharing its base | $(m nua_shared) s | $(m skopeo_shared) s |"
echo
echo "Layer bytes \`nua-pack push\` uploaded: second push of the same image: **${again_bytes}** (must be 0);"
echo "image sharing its base: **${shared_bytes}** (its own layer: ${b_app_bytes} bytes)."
echo
echo "median of $RUNS runs; $(nproc) cores; $(docker-registry --version | awk '{print $NF}') registry on 127.0.0.1; $(skopeo --version)"
log "raw --json of the second push: $again_json"
log "raw --json of the shared-base push: $shared_json"
if [ "$again_bytes" != 0 ]; then
    log "a second push uploaded $again_bytes bytes: it must upload nothing"
    exit 1
fi
# The image sharing a's base sends its own layer and its config (a few hundred bytes), no more.
if [ "$shared_bytes" -lt "$b_app_bytes" ] || [ "$shared_bytes" -gt $((b_app_bytes + 65536)) ]; then
    log "the shared-base push uploaded $shared_bytes bytes, its own layer is $b_app_bytes"
    exit 1
fi
