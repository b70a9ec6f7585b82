#!/usr/bin/env bash
# Prepare this machine for Nua's test suite, idempotently:
#   - install the Debian packages the tests drive (Docker Engine, the reference registry,
#     skopeo, umoci, mmdebstrap, pigz) when any is missing;
#   - start dockerd when no daemon answers, recording that we did so;
#   - make the cached base root filesystem the end-to-end tests build on.
# Source it (`. scripts/test-env.sh`) to get NUA_TEST_CACHE and NUA_TEST_BASE_ROOTFS exported;
# `scripts/test-env.sh stop` stops a dockerd this script started.
set -euo pipefail

NUA_TEST_CACHE=${NUA_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nua-tests}
export NUA_TEST_CACHE
state_dir="$NUA_TEST_CACHE/state"
mkdir -p "$NUA_TEST_CACHE" "$state_dir"

log() { printf 'test-env: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    command -v skopeo >/dev/null || missing+=(skopeo)
    command -v umoci >/dev/null || missing+=(umoci)
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
    command -v pigz >/dev/null || missing+=(pigz)
    [ -x /usr/bin/time ] || missing+=(time)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

docker_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start_dockerd() {
    if docker_answers; then
        return
    fi
    log "no Docker daemon answers: starting dockerd"
    as_root sh -c "nohup dockerd >'$state_dir/dockerd.log' 2>&1 & echo \$! >'$state_dir/dockerd.pid'"
    for _ in $(seq 1 60); do
        if docker_answers; then
            log "dockerd $(docker version --format '{{.Server.Version}}') is up"
            return
        fi
        sleep 1
    done
    log "dockerd did not come up; its log:"
    tail -n 30 "$state_dir/dockerd.log" >&2
    return 1
}

stop_dockerd() {
    local pidfile="$state_dir/dockerd.pid"
    if [ -f "$pidfile" ]; then
        local pid
        pid=$(cat "$pidfile")
        log "stopping the dockerd this script started (pid $pid)"
        as_root kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
        rm -f "$pidfile"
    fi
}

# The first `deb` URI of the machine's apt sources, so the bootstrap uses the same mirror apt
# does (this machine reaches no other).
apt_mirror() {
    local uri
    uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n 1 || true)
    if [ -z "$uri" ]; then
        uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n 1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

# A minimal Debian root filesystem with busybox (its httpd serves the static-site fixture).
# Built once, kept under the cache; rebuilt when missing.
make_base_rootfs() {
    local out="$NUA_TEST_CACHE/rootfs-bookworm-essential-busybox.tar"
    if [ ! -s "$out" ]; then
        log "bootstrapping a Debian bookworm root filesystem into $out (once)"
        rm -rf "$out.partial"
        SOURCE_DATE_EPOCH=0 as_root mmdebstrap --quiet --format=tar --variant=essential \
            --include=busybox bookworm "$out.partial" "$(apt_mirror)" </dev/null
        mv "$out.partial" "$out"
    fi
    NUA_TEST_BASE_ROOTFS=$out
    export NUA_TEST_BASE_ROOTFS
}

case "${1:-setup}" in
    setup)
        install_packages
        start_dockerd
        make_base_rootfs
        ;;
    stop)
        stop_dockerd
        ;;
    *)
        echo "usage: $0 [setup|stop]" >&2
        exit 2
        ;;
esac
