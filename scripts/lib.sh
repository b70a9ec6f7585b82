# Shell functions shared by scripts/quickstart.sh and scripts/test-env.sh. Sourced, not run.

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install PACKAGE... : install the Debian packages given, quietly, updating the lists once.
apt_install() {
    [ $# -gt 0 ] || return 0
    log "installing $*"
    if [ -z "${NUA_APT_UPDATED:-}" ]; then
        as_root apt-get update -qq
        NUA_APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The first `deb` URI of the machine's apt sources, so the bootstrap uses the same mirror apt
# does (behind a firewall it may be the only one reachable).
apt_mirror() {
    local uri
    uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n 1 || true)
    if [ -z "$uri" ]; then
        uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n 1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

# make_rootfs OUT: a minimal Debian bookworm root filesystem tarball with busybox (whose httpd
# serves the static-site sample), made once with mmdebstrap and reused while OUT exists. No
# /dev entries: run as root, mmdebstrap writes device nodes there, which a layer may not carry
# (the sandbox refuses them; it and Docker mount their own /dev).
make_rootfs() {
    local out=$1
    if [ -s "$out" ]; then
        return 0
    fi
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
    log "bootstrapping a Debian bookworm root filesystem into $out (once)"
    mkdir -p "$(dirname "$out")"
    rm -rf "$out.partial"
    # Checked here: a caller that sources this file may not run under `set -e`, and an empty
    # tarball must never take OUT's place.
    if ! SOURCE_DATE_EPOCH=0 as_root mmdebstrap --quiet --format=tar --variant=essential \
        --include=busybox --skip=output/dev bookworm "$out.partial" "$(apt_mirror)" </dev/null; then
        rm -f "$out.partial"
        log "mmdebstrap failed: no root filesystem at $out"
        return 1
    fi
    mv "$out.partial" "$out"
}
