#!/usr/bin/env bash
# Prepare this machine for Nua's test suite, idempotently:
#   - install the Debian packages the tests drive (Docker Engine, the reference registry,
#     skopeo, umoci, mmdebstrap, pigz, GNU time, htpasswd, openssl) when any is missing;
#   - start dockerd when no daemon answers, recording that this script did;
#   - make the base root filesystem the end-to-end tests build on, cached under
#     $NUA_TEST_CACHE (default ~/.cache/nua-tests) and remade when missing.
# Source it (`. scripts/test-env.sh setup`) to get NUA_TEST_CACHE and NUA_TEST_BASE_ROOTFS;
# `scripts/test-env.sh stop` stops a dockerd this script started, `restart-dockerd` restarts
# it (exit 3 when this script did not start the running one).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NUA_TEST_CACHE=${NUA_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nua-tests}
export NUA_TEST_CACHE
state_dir="$NUA_TEST_CACHE/state"
mkdir -p "$state_dir"

install_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    command -v skopeo >/dev/null || missing+=(skopeo)
    # bcrypt entries for the registry's htpasswd set-up; a key and certificate for its tokens
    command -v htpasswd >/dev/null || missing+=(apache2-utils)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v umoci >/dev/null || missing+=(umoci)
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
    command -v pigz >/dev/null || missing+=(pigz)
    [ -x /usr/bin/time ] || missing+=(time)
    command -v newuidmap >/dev/null || missing+=(uidmap)
    # the reverse proxy Nua drives
    [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
    [ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
    # an ACME CA and its DNS, for certificates issued for real on 127.0.0.1
    command -v pebble >/dev/null || missing+=(pebble)
    command -v curl >/dev/null || missing+=(curl)
    # the backup repository tool
    command -v restic >/dev/null || missing+=(restic)
    # an SFTP server for backups to a remote repository (run by the tests on a high port)
    [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
    # a virtualenv for moto, the S3 server the backup tests install from PyPI
    /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    apt_install "${missing[@]}"
}

# The unprivileged user the sandbox tests re-run themselves as, with subordinate id ranges
# (as `useradd` gives a new user on Debian; added explicitly when missing).
ensure_rootless_user() {
    local user=nua-rootless file kind first
    id "$user" >/dev/null 2>&1 || as_root useradd --create-home --shell /bin/sh "$user"
    for kind in uid gid; do
        file=/etc/sub$kind
        grep -qE "^($user|$(id -u "$user")):" "$file" 2>/dev/null && continue
        # The first id past every range already given out, so no two users share ids.
        first=$(awk -F: 'BEGIN { end = 100000 } $2 + $3 > end { end = $2 + $3 } END { print end }' \
            "$file" 2>/dev/null || echo 100000)
        as_root usermod "--add-sub${kind}s" "$first-$((first + 65535))" "$user"
    done
}

# The unprivileged user the single-id fallback is tested as: no subordinate id ranges, so only
# its own id maps into the sandbox. `useradd` on Debian allocates ranges unless told not to;
# any found (e.g. added by hand) are removed.
ensure_single_id_user() {
    local user=nua-single
    id "$user" >/dev/null 2>&1 ||
        as_root useradd --create-home --shell /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$user"
    local owner="^($user|$(id -u "$user")):"
    if grep -qE "$owner" /etc/subuid /etc/subgid 2>/dev/null; then
        as_root sed -i -E "/$owner/d" /etc/subuid /etc/subgid
    fi
}

docker_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start_dockerd() {
    docker_answers && return 0
    log "no Docker daemon answers: starting dockerd"
    # A dockerd killed without a chance to clean up leaves its pid file behind, and a new
    # one refuses to start while that file names a live process.
    local stale
    stale=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [ -n "$stale" ] && ! kill -0 "$stale" 2>/dev/null; then
        as_root rm -f /var/run/docker.pid
    fi
    as_root sh -c "nohup dockerd >'$state_dir/dockerd.log' 2>&1 & echo \$! >'$state_dir/dockerd.pid'"
    for _ in $(seq 1 60); do
        if docker_answers; then
            log "dockerd $(docker version --format '{{.Server.Version}}') is up"
            return 0
        fi
        sleep 1
    done
    log "dockerd did not come up; the end of its log:"
    tail -n 30 "$state_dir/dockerd.log" >&2
    return 1
}

stop_dockerd() {
    local pidfile="$state_dir/dockerd.pid" pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    log "stopping the dockerd this script started (pid $pid)"
    as_root kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    rm -f "$pidfile"
}

case "${1:-setup}" in
    setup)
        install_packages
        ensure_rootless_user
        ensure_single_id_user
        start_dockerd
        NUA_TEST_BASE_ROOTFS="$NUA_TEST_CACHE/rootfs-bookworm-essential-busybox-nodev.tar"
        # Sourced or run, a failure is the caller's to see.
        make_rootfs "$NUA_TEST_BASE_ROOTFS" || { return 1 2>/dev/null || exit 1; }
        export NUA_TEST_BASE_ROOTFS
        ;;
    stop)
        stop_dockerd
        ;;
    restart-dockerd)
        # For the test that a server converges after its Docker daemon restarts: only a
        # dockerd this script started is restarted (never one of the machine's services).
        [ -f "$state_dir/dockerd.pid" ] || { log "no dockerd of this script to restart"; exit 3; }
        stop_dockerd
        start_dockerd
        ;;
    *)
        echo "usage: $0 [setup|stop|restart-dockerd]" >&2
        exit 2
        ;;
esac
