#!/usr/bin/env bash
# `nua-pack build` of the flask-hello and node-hello fixtures (dependencies from PyPI and npm)
# against `docker build` classic, `docker build` BuildKit and `buildah bud --layers` building
# the equivalent Dockerfiles of benches/apps/ from the same base image, in one run:
#   cold (nothing of the app cached), no-op (the same build again), one-line edit (a comment
#   appended to app.py / server.js), each to "image in the tool's store" and to "image
#   tarball"; final image size, tarball size, peak memory. Prints Markdown tables.
#
#   RUNS=3 benches/compare_apps.sh          # RUNS=3 by default; medians of RUNS
#   NUA_PACK=/path/to/nua-pack RUNS=1 benches/compare_apps.sh   # use that binary, no cargo
#   APPS="flask-hello" FULL_COLD=0 ...       # one app; skip the fully cold nua-pack build
#
# Needs: a Docker daemon (started by `scripts/test-env.sh setup` when none answers), buildah
# (installed below when missing), GNU time, python3, root (buildah's storage, dockerd's
# /proc/PID/clear_refs). Docker is run as /usr/bin/docker (Debian's 20.10 CLI, which has
# BuildKit built in) unless DOCKER says otherwise: a newer CLI first on PATH needs the buildx
# plugin for DOCKER_BUILDKIT=1.
#
# Base: `nua-pack base build python` and `node-18` once per run of the script, into a cache
# every nua-pack run starts from (hard-linked copy), and as tarballs that are `docker load`ed
# (tag nua-base/python:bench, nua-base/node-18:bench) and `buildah pull oci-archive:`ed. So
# "cold" means: the base is there, unpacked, nothing of the app is, for every tool.
#   docker cold: `docker build --no-cache`; buildah cold: `buildah bud --layers --no-cache`;
#   nua-pack cold: a fresh NUA_CACHE_DIR holding the base's blobs and layer index and the
#   base's layers unpacked (see prime_cache below); also measured: the same with the base's
#   layers still packed, and once "fully cold" (an empty cache: the base bootstrapped from
#   Debian packages too).
# Tarball: docker build + `docker save -o` (uncompressed layers); buildah bud +
# `buildah push IMG oci-archive:FILE` (gzip layers); nua-pack writes its tarball (gzip
# layers) anyway. "to tarball" = the build plus the export, both timed in the same run.
# nua-pack's image is also `docker load`ed (timed) to give "image in Docker's store", and
# loaded with `nua load` (thin: the layers Docker has are not sent), each from the state
# "base in Docker, this image not" (the image is removed with `docker rmi` before each).
#
# The proxy CA: PyPI and npm may only be reachable through a TLS-inspecting proxy whose CA
# is in the host's bundle (HOST_CA) and not in the base's. Those extra CAs (PEM, the host's
# certificates the base's bundle lacks; empty when none) go to every Dockerfile build as the
# build arg EXTRA_CA, written to /tmp inside the RUN that installs the packages and removed in
# the same RUN (pip: PIP_CERT to base bundle + extra; npm: NODE_EXTRA_CA_CERTS): nothing of it
# in a layer, the same Dockerfile and cost for the three peers. nua-pack mounts the host bundle
# into its build steps itself.
#
# Peak memory of the cold build, three numbers: GNU time's %M of the tool, which is the
# largest of the tool and the children it waits for (nua-pack's and buildah's build steps are
# such children, so for them it is usually pip's or npm's peak); the tool's own VmHWM, polled;
# for docker, whose CLI only sends the context while dockerd does the work (containerd, runc
# and the RUN step's processes are counted nowhere), dockerd's VmHWM, reset through
# /proc/PID/clear_refs before each timed command (so it includes its resident baseline).
#
# The nua-pack column is filled when `nua-pack build` succeeds and its image passes the same
# check as the peers' (the app's packages importable from /nua/app as the image's user);
# otherwise it shows n/a and the reason is printed. A peer that fails stops the script with a
# non-zero exit. Cleans up: its docker images (by the ids it built), the buildah images it
# made, temp dirs. BuildKit's cache records (a few MB) stay until `docker builder prune`; the
# daemon is shared, so the script does not prune it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/lib.sh
RUNS=${RUNS:-3}
DOCKER=${DOCKER:-/usr/bin/docker}
APPS=${APPS:-flask-hello node-hello}
FULL_COLD=${FULL_COLD:-1}
HOST_CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}

# Benchmark dependencies.
command -v buildah >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y buildah >/dev/null
[ -x /usr/bin/time ] || apt_install time
command -v python3 >/dev/null || apt_install python3
"$DOCKER" version >/dev/null 2>&1 || bash scripts/test-env.sh setup
[ "$(id -u)" = 0 ] || { log "run as root (buildah's storage, dockerd's peak memory)"; exit 1; }

if [ -z "${NUA_PACK:-}" ]; then
    cargo build --release --locked --bin nua-pack >/dev/null 2>&1
    NUA_PACK=$PWD/target/release/nua-pack
fi
pack=$NUA_PACK
# `nua load` (thin: only the layers Docker lacks) is timed beside `docker load`.
if [ -z "${NUA:-}" ]; then
    cargo build --release --locked --bin nua >/dev/null 2>&1
    NUA=$PWD/target/release/nua
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/apps-bench.XXXXXX")
docker_ids=()           # every docker image this script built or loaded, removed at exit
buildah_before=$(buildah images -a -q --no-trunc 2>/dev/null | sort -u || true)
cleanup() {
    set +e
    local id app tool
    # Tags first, then the images they used to name: never forced, so an image that someone
    # else also tagged (nua-pack's are reproducible, the same bytes give the same id) stays.
    for app in $APPS; do
        for tool in nua-pack classic buildkit; do "$DOCKER" rmi "nua-bench-apps/$app:$tool" >/dev/null 2>&1; done
    done
    for id in "${docker_ids[@]}"; do "$DOCKER" rmi "$id" >/dev/null 2>&1; done
    "$DOCKER" rmi nua-base/python:bench nua-base/node-18:bench >/dev/null 2>&1
    # buildah: every image that was not there before (finals, --layers intermediates, bases);
    # children first, so a few passes.
    for _ in 1 2 3 4 5; do
        comm -13 <(echo "$buildah_before") <(buildah images -a -q --no-trunc 2>/dev/null | sort -u) |
            xargs -r buildah rmi -f >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

dockerd_pid=$(cat /var/run/docker.pid 2>/dev/null || pidof dockerd || true)

base_of() { case $1 in flask-hello) echo python ;; node-hello) echo node-18 ;; esac; }
# The one-line edit, and the check every image must pass (run in the image's WORKDIR as its
# user): the installed packages and the app's source are there.
edit() { case $1 in
    flask-hello) echo "# edit $2" >>"$3/app.py" ;;
    node-hello) echo "// edit $2" >>"$3/server.js" ;;
esac; }
check_cmd() { case $1 in
    flask-hello) echo "python3 -c 'import flask, gunicorn, app'" ;;
    node-hello) echo "node -e \"require('ms'); require('fs').statSync('server.js')\"" ;;
esac; }

# measure CMD...: runs CMD (stdout to $work/out, stderr to $work/err); sets LAST_T (wall s,
# GNU time's %e), LAST_RSS (KiB, GNU time's %M: the largest of CMD and the children it waited
# for), LAST_OWN (KiB, CMD's own VmHWM, polled every 50 ms: the last value read before it
# exits), LAST_DK (dockerd's peak RSS in KiB over the command).
measure() {
    local tpid cpid= k v state own=0
    [ -n "$dockerd_pid" ] && { echo 5 >"/proc/$dockerd_pid/clear_refs"; } 2>/dev/null || true
    /usr/bin/time -o "$work/time" -f '%e %M' "$@" >"$work/out" 2>"$work/err" &
    tpid=$!
    while :; do
        state=
        while read -r k v _; do [ "$k" = State: ] && state=$v; done 2>/dev/null <"/proc/$tpid/status" || true
        [ -n "$state" ] && [ "$state" != Z ] || break
        [ -n "$cpid" ] || cpid=$(pgrep -P "$tpid" | head -n 1 || true)
        if [ -n "$cpid" ]; then
            while read -r k v _; do [ "$k" = VmHWM: ] && own=$v; done 2>/dev/null <"/proc/$cpid/status" || true
        fi
        sleep 0.05
    done
    wait "$tpid" || return 1
    read -r LAST_T LAST_RSS < <(tail -n 1 "$work/time")
    LAST_OWN=$own
    LAST_DK=$(awk '/^VmHWM/ {print $2}' "/proc/$dockerd_pid/status" 2>/dev/null || echo 0)
}
fail() {
    log "FAILED: $*"
    tail -n 40 "$work/out" "$work/err" >&2 || true
    exit 1
}
declare -A R           # R[app|tool|what] = space-separated values, one per run
rec() { R[$1]+="$2 "; }
sum() { echo "$1 + $2" | bc; }
docker_size() { "$DOCKER" image inspect -f '{{.Size}}' "$1"; }
# buildah's size of an image: the sum of its layers' uncompressed sizes, from the storage's
# own records (what `buildah images` rounds to MB).
buildah_size() {
    python3 - "$1" <<'EOF'
import json, subprocess, sys
root = subprocess.run(["buildah", "info", "--format", "{{.store.GraphRoot}}"],
                      capture_output=True, text=True, check=True).stdout.strip()
drv = subprocess.run(["buildah", "info", "--format", "{{.store.GraphDriverName}}"],
                     capture_output=True, text=True, check=True).stdout.strip()
layers = {l["id"]: l for l in json.load(open(f"{root}/{drv}-layers/layers.json"))}
want = sys.argv[1]
for im in json.load(open(f"{root}/{drv}-images/images.json")):
    if im["id"].startswith(want) or want in im.get("names", []):
        size, l = 0, im.get("layer")
        while l:
            size += layers[l].get("diff-size", 0)
            l = layers[l].get("parent")
        print(size)
        break
EOF
}
buildah_id() { buildah inspect -t image -f '{{.FromImageID}}' "$1"; }

# --- bases --------------------------------------------------------------------------------
for app in $APPS; do
    base=$(base_of "$app")
    log "base $base (nua-pack base build, docker load, buildah pull)"
    NUA_CACHE_DIR=$work/base-cache "$pack" base build "$base" -q -t "nua-base/$base:bench" \
        -o "$work/base-$base.tar"
    "$DOCKER" load -q -i "$work/base-$base.tar" >/dev/null
    id=$(buildah pull -q "oci-archive:$work/base-$base.tar")
    buildah tag "$id" "nua-base/$base:bench"
    # The CAs of the host that the base lacks (see the header).
    extra_ca "nua-base/$base:bench" >"$work/extra-ca-$base.pem"
    [ "$(wc -c <"$work/extra-ca-$base.pem")" -lt 100000 ] ||
        { log "the host trusts over 100 kB of CAs the base does not: too big for a build arg"; exit 1; }
    R[$app|base|docker_size]=$(docker_size "nua-base/$base:bench")
    R[$app|base|buildah_size]=$(buildah_size "$id")
    R[$app|base|extra_ca]=$(grep -c 'BEGIN CERT' "$work/extra-ca-$base.pem" || true)
done

declare -A NUA_NA      # NUA_NA[app] = why nua-pack's numbers are not shown
# nua-pack's cache with the base in it, as the peers have theirs. `docker load` and
# `buildah pull` unpack the base's layers into their stores; nua-pack unpacks a layer (into
# $NUA_CACHE_DIR/sandbox/layers/DIFF_ID) the first time a build step runs on it, and
# `base build` leaves the base's top layers packed. So each app's base is unpacked once, by an
# untimed build of the app in a copy of the base cache ("prime"), and every timed cold build
# starts from the base's blobs and layer index plus those unpacked layers (hard links), and
# nothing else of that build. Cold "packed": the same without the unpacked layers.
base_diff_ids() {
    python3 - "$1" <<'PY'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    config = json.load(t.extractfile(json.load(t.extractfile("manifest.json"))[0]["Config"]))
print(" ".join(d.split(":", 1)[1] for d in config["rootfs"]["diff_ids"]))
PY
}
declare -A UNPACKED    # UNPACKED[app] = how many of the base's layers the primed cache holds unpacked
prime_cache() {
    local app=$1 prime=$work/prime-$1 d n=0
    mkdir -p "$prime" "$work/ctx"
    cp -al "$work/base-cache/." "$prime/"
    cp -r "fixtures/apps/$app" "$work/ctx/prime-$app"
    if ! NUA_CACHE_DIR=$prime "$pack" build "$work/ctx/prime-$app" -q -o "$work/prime.tar" \
        -t "nua-bench-apps/$app:prime" >"$work/out" 2>"$work/err"; then
        NUA_NA[$app]="\`nua-pack build\` failed: $(grep -v '^\s*$' "$work/err" | tail -n 1)"
    fi
    for d in $(base_diff_ids "$work/base-$(base_of "$app").tar"); do
        [ -d "$prime/sandbox/layers/$d" ] && n=$((n + 1))
    done
    UNPACKED[$app]=$n
    rm -rf "$work/ctx/prime-$app" "$work/prime.tar"
}
# fresh_cache DIR APP packed|unpacked
fresh_cache() {
    local d
    mkdir -p "$1" && cp -al "$work/base-cache/blobs" "$work/base-cache/layers" "$1/"
    [ "$3" = unpacked ] || return 0
    mkdir -p "$1/sandbox/layers"
    for d in $(base_diff_ids "$work/base-$(base_of "$2").tar"); do
        [ ! -d "$work/prime-$2/sandbox/layers/$d" ] || cp -al "$work/prime-$2/sandbox/layers/$d" "$1/sandbox/layers/"
    done
}

declare -A NUA_REBUILT # NUA_REBUILT[app|phase]: the steps nua-pack did not take from its cache (run 1)
# The steps `--json` says were not taken from the cache, with their seconds when its events
# give them (JSON lines: step_finished events, then the result), else from the result's layers.
nua_steps_rebuilt() {
    python3 -c '
import json, sys
result, built = None, []
for line in sys.stdin:
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if not isinstance(d, dict):
        continue
    if d.get("event") == "step_finished" and not d.get("cached"):
        built.append("%s %.2f s" % (d["step"], d.get("seconds", 0)))
    if "layers" in d:
        result = d
if not built and result:
    built = [l["step"] for l in result["layers"] if not l["cached"]]
print(", ".join(built) or "none")
' <"$work/out" 2>/dev/null || echo "?"
}

# --- nua-pack -----------------------------------------------------------------------------
run_nua() {
    local app=$1 i=$2 ctx=$work/ctx/$app-nua-$i cache=$work/nua-cache-$app-$i phase
    local out=$work/$app-nua.tar tag=nua-bench-apps/$app:nua-pack
    [ -z "${NUA_NA[$app]:-}" ] || return 0
    cp -r "fixtures/apps/$app" "$ctx"
    # Cold with the base's layers still packed (as `base build` leaves them), in a cache of its
    # own; then the series cold (base unpacked) → no-op → edit in another.
    fresh_cache "$cache-packed" "$app" packed
    if measure env NUA_CACHE_DIR="$cache-packed" "$pack" build "$ctx" -o "$out" -t "$tag" --json; then
        rec "$app|nua|cold_packed" "$LAST_T"
    else
        NUA_NA[$app]="\`nua-pack build\` failed (cold, base packed): $(grep -v '^\s*$' "$work/err" | tail -n 1)"
        return 0
    fi
    rm -rf "$cache-packed"
    fresh_cache "$cache" "$app" unpacked
    for phase in cold noop edit; do
        [ "$phase" = edit ] && edit "$app" "$i" "$ctx"
        if ! measure env NUA_CACHE_DIR="$cache" "$pack" build "$ctx" -o "$out" -t "$tag" --json; then
            NUA_NA[$app]="\`nua-pack build\` failed ($phase): $(grep -v '^\s*$' "$work/err" | tail -n 1)"
            return 0
        fi
        [ "$i" = 1 ] && NUA_REBUILT[$app|$phase]=$(nua_steps_rebuilt)
        rec "$app|nua|${phase}_tar" "$LAST_T"
        [ "$phase" = cold ] && { rec "$app|nua|rss" "$LAST_RSS"; rec "$app|nua|own" "$LAST_OWN"; }
        local tbuild=$LAST_T
        # Both loads start from the same state: the base in Docker, this image not.
        "$DOCKER" rmi -f "$tag" >/dev/null 2>&1 || true
        measure "$NUA" load "$out" || fail "nua load of nua-pack's $out"
        rec "$app|nua_thin|$phase" "$(sum "$tbuild" "$LAST_T")"
        "$DOCKER" rmi -f "$tag" >/dev/null 2>&1 || true
        measure "$DOCKER" load -q -i "$out" || fail "docker load of nua-pack's $out"
        rec "$app|nua|$phase" "$(sum "$tbuild" "$LAST_T")"
        docker_ids+=("$("$DOCKER" image inspect -f '{{.Id}}' "$tag")")
        if [ "$i" = 1 ] && [ "$phase" = cold ]; then
            if ! "$DOCKER" run --rm "$tag" sh -c "$(check_cmd "$app")" >"$work/check" 2>&1; then
                NUA_NA[$app]="its image fails the check \`$(check_cmd "$app")\`: $(tail -n 1 "$work/check")"
                return 0
            fi
            R[$app|nua|size]=$(docker_size "$tag")
            R[$app|nua|tarsize]=$(stat -c %s "$out")
        fi
    done
    rm -rf "$cache" "$ctx"
}

# --- peers --------------------------------------------------------------------------------
run_peer() {
    local tool=$1 app=$2 i=$3 ctx=$work/ctx/$app-$1-$i phase nocache
    local tag=nua-bench-apps/$app:$tool out=$work/$app-$tool.tar base
    base=$(base_of "$app")
    local common=(-f "benches/apps/$app/Dockerfile"
        --build-arg "EXTRA_CA=$(cat "$work/extra-ca-$base.pem")" -t "$tag" "$ctx")
    cp -r "fixtures/apps/$app" "$ctx"
    for phase in cold noop edit; do
        nocache=
        [ "$phase" = cold ] && nocache=--no-cache
        [ "$phase" = edit ] && edit "$app" "$i" "$ctx"
        case $tool in
            classic|buildkit)
                local kit=0
                [ "$tool" = buildkit ] && kit=1
                measure env DOCKER_BUILDKIT=$kit "$DOCKER" build $nocache "${common[@]}" ||
                    fail "$tool build of $app ($phase)"
                ;;
            buildah)
                measure buildah bud --layers --format docker $nocache "${common[@]}" || fail "buildah bud of $app ($phase)"
                ;;
        esac
        rec "$app|$tool|$phase" "$LAST_T"
        [ "$phase" = cold ] && { rec "$app|$tool|rss" "$LAST_RSS"; rec "$app|$tool|own" "$LAST_OWN"; rec "$app|$tool|dockerd" "$LAST_DK"; }
        local tbuild=$LAST_T
        case $tool in
            classic|buildkit)
                docker_ids+=("$("$DOCKER" image inspect -f '{{.Id}}' "$tag")")
                measure "$DOCKER" save -o "$out" "$tag" || fail "docker save of $app ($tool)"
                ;;
            buildah)
                rm -f "$out"
                measure buildah push -q "$tag" "oci-archive:$out" || fail "buildah push of $app"
                ;;
        esac
        rec "$app|$tool|${phase}_tar" "$(sum "$tbuild" "$LAST_T")"
        if [ "$i" = 1 ] && [ "$phase" = cold ]; then
            case $tool in
                classic|buildkit)
                    "$DOCKER" run --rm "$tag" sh -c "$(check_cmd "$app")" >"$work/check" 2>&1 ||
                        { cat "$work/check" >&2; fail "the $tool image of $app fails its check"; }
                    R[$app|$tool|size]=$(docker_size "$tag")
                    ;;
                buildah)
                    local c
                    c=$(buildah from -q "$tag")
                    buildah run "$c" -- sh -c "$(check_cmd "$app")" >"$work/check" 2>&1 ||
                        { buildah rm "$c" >/dev/null; cat "$work/check" >&2; fail "the buildah image of $app fails its check"; }
                    buildah rm "$c" >/dev/null
                    R[$app|$tool|size]=$(buildah_size "$(buildah_id "$tag")")
                    ;;
            esac
            R[$app|$tool|tarsize]=$(stat -c %s "$out")
        fi
    done
    rm -rf "$ctx"
}

mkdir -p "$work/ctx"
for app in $APPS; do log "priming nua-pack's cache for $app (base unpacked)"; prime_cache "$app"; done
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq 1 "$RUNS"); do
    for app in $APPS; do
        log "run $i/$RUNS: $app"
        run_nua "$app" "$i"
        for tool in classic buildkit buildah; do run_peer "$tool" "$app" "$i"; done
    done
done
# Fully cold nua-pack (empty cache: the base is bootstrapped too), once per app.
if [ "$FULL_COLD" = 1 ]; then
    for app in $APPS; do
        [ -z "${NUA_NA[$app]:-}" ] || continue
        rm -rf "$work/ctx/full" && cp -r "fixtures/apps/$app" "$work/ctx/full"
        if measure env NUA_CACHE_DIR="$work/full-cache" "$pack" build "$work/ctx/full" -o "$work/full.tar" -t "nua-bench-apps/$app:nua-pack"; then
            R[$app|nua|full_cold]=$LAST_T
        fi
        rm -rf "$work/full-cache" "$work/full.tar"
    done
fi

# --- report -------------------------------------------------------------------------------
med() { local v=${R[$1]:-}; [ -n "$v" ] || { echo n/a; return; }; tr ' ' '\n' <<<"$v" | grep . | median; }
secs() { local m; m=$(med "$1"); [ "$m" = n/a ] && echo n/a || echo "$m s"; }
mib() { [ -n "${1:-}" ] && [ "$1" != n/a ] && awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }' || echo n/a; }
kib_mib() { local m; m=$(med "$1"); [ "$m" = n/a ] && echo n/a || awk -v k="$m" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }
added() { [ -n "${1:-}" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f MB", (a - b) / 1e6 }' || echo n/a; }
nua_or_na() { if [ -n "${NUA_NA[$1]:-}" ]; then echo n/a; else "${@:2}"; fi; }

echo "### Build time (median of $RUNS)"
echo
echo "| app | tool | cold | no-op | one-line edit | cold → tarball | no-op → tarball | edit → tarball |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for app in $APPS; do
    n() { nua_or_na "$app" secs "$1"; }
    echo "| $app | \`nua-pack build\` (writes the tarball) | — | — | — | $(n "$app|nua|cold_tar") | $(n "$app|nua|noop_tar") | $(n "$app|nua|edit_tar") |"
    echo "| $app | \`nua-pack build\` + \`docker load\` | $(n "$app|nua|cold") | $(n "$app|nua|noop") | $(n "$app|nua|edit") | — | — | — |"
    echo "| $app | \`nua-pack build\` + \`nua load\` (thin) | $(n "$app|nua_thin|cold") | $(n "$app|nua_thin|noop") | $(n "$app|nua_thin|edit") | — | — | — |"
    for tool in classic buildkit buildah; do
        case $tool in
            classic) name="\`docker build\` classic (+ \`docker save\`)" ;;
            buildkit) name="\`docker build\` BuildKit (+ \`docker save\`)" ;;
            buildah) name="\`buildah bud --layers\` (+ \`buildah push oci-archive:\`)" ;;
        esac
        echo "| $app | $name | $(secs "$app|$tool|cold") | $(secs "$app|$tool|noop") | $(secs "$app|$tool|edit") | $(secs "$app|$tool|cold_tar") | $(secs "$app|$tool|noop_tar") | $(secs "$app|$tool|edit_tar") |"
    done
done
echo
echo "### Image size and memory (cold build)"
echo
echo "| app | tool | image, uncompressed (as reported) | of which over the base | tarball | peak RSS, %M (tool and the steps it waits for) | peak RSS, tool alone | dockerd peak RSS |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for app in $APPS; do
    ds=${R[$app|base|docker_size]} bs=${R[$app|base|buildah_size]}
    if [ -n "${NUA_NA[$app]:-}" ]; then
        echo "| $app | \`nua-pack build\` | n/a | n/a | n/a | n/a | n/a | — |"
    else
        echo "| $app | \`nua-pack build\` | $(mib "${R[$app|nua|size]}") (Docker's, after load) | $(added "${R[$app|nua|size]}" "$ds") | $(mib "${R[$app|nua|tarsize]}") | $(kib_mib "$app|nua|rss") | $(kib_mib "$app|nua|own") | — |"
    fi
    for tool in classic buildkit; do
        echo "| $app | \`docker build\` $tool | $(mib "${R[$app|$tool|size]}") | $(added "${R[$app|$tool|size]}" "$ds") | $(mib "${R[$app|$tool|tarsize]}") | $(kib_mib "$app|$tool|rss") (CLI) | $(kib_mib "$app|$tool|own") (CLI) | $(kib_mib "$app|$tool|dockerd") |"
    done
    echo "| $app | \`buildah bud --layers\` | $(mib "${R[$app|buildah|size]}") | $(added "${R[$app|buildah|size]}" "$bs") | $(mib "${R[$app|buildah|tarsize]}") | $(kib_mib "$app|buildah|rss") | $(kib_mib "$app|buildah|own") | — |"
done
echo
for app in $APPS; do
    base=$(base_of "$app")
    echo "- $app: base \`$base\` $(mib "${R[$app|base|docker_size]}") for Docker, $(mib "${R[$app|base|buildah_size]}") for buildah; ${R[$app|base|extra_ca]} extra CA(s) from the host passed as EXTRA_CA."
    if [ -n "${NUA_NA[$app]:-}" ]; then
        echo "- $app: nua-pack n/a: ${NUA_NA[$app]}"
    else
        echo "- $app: steps nua-pack built (not cached), cold: ${NUA_REBUILT[$app|cold]:-?}; no-op: ${NUA_REBUILT[$app|noop]:-?}; edit: ${NUA_REBUILT[$app|edit]:-?}."
        echo "- $app: nua-pack cold with the base's layers still packed (fresh cache holding only \`base build\`'s output): $(secs "$app|nua|cold_packed") (median); in the table, ${UNPACKED[$app]:-0} of the base's layers are unpacked as Docker's and buildah's are."
        echo "- $app: nua-pack fully cold (empty cache, base bootstrapped): $( [ -n "${R[$app|nua|full_cold]:-}" ] && printf '%.2f s' "${R[$app|nua|full_cold]}" || echo 'not measured')."
    fi
done
echo "- $(nproc) cores; load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg); $("$DOCKER" version --format 'Docker {{.Server.Version}} ({{.Client.Version}} CLI)'), storage $("$DOCKER" info --format '{{.Driver}}'); $(buildah --version | cut -d' ' -f1-3), storage $(buildah info --format '{{.store.GraphDriverName}}'); nua-pack $("$pack" --version | cut -d' ' -f2)."

# A peer that failed has already exited non-zero; nua-pack's n/a does not fail the script.
exit 0
