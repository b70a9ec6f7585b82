#!/usr/bin/env bash
# A build cache kept in a registry, for a builder that starts with nothing (a CI runner with
# an empty disk): `nua-pack build --cache-from REF` into an empty NUA_CACHE_DIR, against the
# same app built fully cold and against BuildKit building from its own registry cache, in one
# run, for the flask-hello and node-hello fixtures. Prints Markdown tables.
#
#   benches/compare_registry_cache.sh                 # RUNS=3 by default; medians of RUNS
#   APPS=flask-hello RUNS=1 benches/compare_registry_cache.sh
#   NUA_PACK=/path/to/nua-pack benches/compare_registry_cache.sh   # that binary, no cargo
#
# The registry: Debian's `docker-registry` on 127.0.0.1 (filesystem storage, no auth, plain
# HTTP), one for the whole run; nua-pack reaches it with `--insecure-registry`, Docker treats
# 127.0.0.0/8 as insecure by default.
#
# Per app, every run:
#   - cold: `nua-pack build APP --json` with an empty NUA_CACHE_DIR: the base bootstrapped
#     from Debian packages (downloaded too), then pip / npm, the source, the metadata.
#   - registry cache: `nua-pack build APP --cache-from REF --json` with another empty
#     NUA_CACHE_DIR, timed to the image tarball. REF was written once, untimed, by
#     `nua-pack build --cache-to REF` in the cache of the first cold run (so it holds every
#     step's layer, the base's too). Its manifest digest must be that cold build's, and no
#     step may run (every one `step_fetched`), or the script fails. A later cold run whose
#     image differs from run 1's is reported (with the steps whose layers differ), not fatal:
#     it is the reproducibility of a cold build, not the cache, that is at fault then.
#   - BuildKit: `docker builder prune -af` and the built image removed, then
#     `DOCKER_BUILDKIT=1 docker build --cache-from REGISTRY/IMAGE -t TAG .` of
#     benches/apps/APP/Dockerfile and `docker save -o FILE TAG` (a tarball, like nua-pack's
#     output), timed together (and each apart). REGISTRY/IMAGE was built once with
#     `--build-arg BUILDKIT_INLINE_CACHE=1` and pushed. Its base, nua-pack's `python` /
#     `node-18` base made by `nua-pack base build` and `docker load`ed, stays in Docker's
#     store: BuildKit starts with its base, nua-pack with nothing. Whether BuildKit used the
#     cache is read from its plain progress output (`CACHED` per step), and printed.
# Run 1 also gives where nua-pack's registry-cache build spends its time: each JSON event is
# stamped as it arrives, so the time until the first step starts (process start, the cache's
# manifest and config fetched, the plan), the fetched steps (each: its layer downloaded, its
# digest checked, decompressed and hashed for its DiffID), the gaps between steps, and the
# image written after the last step.
#
# Needs: a Docker daemon whose CLI has BuildKit (/usr/bin/docker, Debian's 20.10, unless
# DOCKER says otherwise), docker-registry, python3, curl, jq. `docker builder prune -af`
# empties the build cache of the whole daemon, not only this script's records.
# Cleans up at exit: the registry process, the temporary folder, the images it tagged, its
# builder cache records.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/lib.sh
RUNS=${RUNS:-3}
DOCKER=${DOCKER:-/usr/bin/docker}
APPS=${APPS:-flask-hello node-hello}
HOST_CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
# Fixed, so that every build of an app makes the same digest whatever folder it is in.
export SOURCE_DATE_EPOCH=1700000000

for tool in docker-registry python3 curl jq; do
    command -v "$tool" >/dev/null || { log "missing $tool: run scripts/test-env.sh setup"; exit 1; }
done
"$DOCKER" version >/dev/null 2>&1 || bash scripts/test-env.sh setup

if [ -z "${NUA_PACK:-}" ]; then
    cargo build --release --locked --bin nua-pack >/dev/null 2>&1
    NUA_PACK=$PWD/target/release/nua-pack
fi
pack=$NUA_PACK

work=$(mktemp -d "${TMPDIR:-/tmp}/registry-cache-bench.XXXXXX")
registry_pid=
declare -A base_before   # base_before[tag] = the image id the tag named before this script
docker_tags=()           # tags this script made, removed at exit
cleanup() {
    set +e
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null
        wait "$registry_pid" 2>/dev/null
    fi
    local tag
    for tag in "${docker_tags[@]}"; do "$DOCKER" rmi "$tag" >/dev/null 2>&1; done
    # A base tag someone else had before: give it back its image.
    for tag in "${!base_before[@]}"; do
        if [ -n "${base_before[$tag]}" ]; then
            "$DOCKER" tag "${base_before[$tag]}" "$tag" >/dev/null 2>&1
        else
            "$DOCKER" rmi "$tag" >/dev/null 2>&1
        fi
    done
    "$DOCKER" builder prune -af >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

# --- the registry ---------------------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
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
  addr: $host
  secret: nua-bench
EOF
# `REGISTRY_*` variables would override the file.
env $(env | grep -o '^REGISTRY_[^=]*' | sed 's/^/-u /') docker-registry serve "$work/registry.yml" \
    >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "http://$host/v2/" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://$host/v2/" >/dev/null 2>&1 || {
    log "the registry did not come up; its log:"
    tail -n 20 "$work/registry.log" >&2
    exit 1
}

# --- helpers --------------------------------------------------------------------------------
base_of() { case $1 in flask-hello) echo python ;; node-hello) echo node-18 ;; esac; }
fail() {
    log "FAILED: $*"
    tail -n 30 "$work/out" "$work/err" 2>/dev/null >&2 || true
    exit 1
}
declare -A R           # R[app|what] = space-separated values, one per run
rec() { R[$1]+="$2 "; }
med() { local v=${R[$1]:-}; [ -n "$v" ] || { echo n/a; return; }; tr ' ' '\n' <<<"$v" | grep . | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "n/a" }'; }

# nua_build CACHE OUT ARGS...: `nua-pack build` of the app copy in $ctx with --json, each
# line stamped with the time it arrived ($EPOCHREALTIME, then the line), into $work/out;
# sets LAST_T (wall seconds) and T0 (the start).
nua_build() {
    local cache=$1 out=$2
    shift 2
    T0=$EPOCHREALTIME
    NUA_CACHE_DIR=$cache "$pack" build "$ctx" -o "$out" --json "$@" 2>"$work/err" |
        while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done >"$work/out" ||
        return 1
    LAST_T=$(echo "$EPOCHREALTIME - $T0" | bc)
}
# events: the JSON lines of the last nua_build, unstamped.
events() { cut -d' ' -f2- "$work/out"; }
digest_of() { events | tail -n 1 | jq -r '.manifest_digest'; }
# layers_of: "STEP<TAB>LAYER DIGEST" of the last build's result, one a line.
layers_of() { events | tail -n 1 | jq -r '.layers[] | "\(.step)\t\(.digest)"'; }
steps_made() { events | jq -r 'select(.event == "step_finished" and .cached == false) | .step' | paste -sd, -; }
count_events() { events | jq -r "select(.event == \"$1\") | .step" | wc -l; }

# phases: where run 1's registry-cache build spent its time, from its stamped events.
phases() {
    python3 - "$T0" "$work/out" <<'PY'
import json, sys
t0 = float(sys.argv[1])
first_start = last_end = result = None
fetched, step_s, gaps, prev_end = set(), 0.0, 0.0, None
for line in open(sys.argv[2]):
    stamp, _, text = line.partition(" ")
    t = float(stamp) - t0
    try:
        e = json.loads(text)
    except ValueError:
        continue
    kind = e.get("event")
    if kind == "step_started":
        if first_start is None:
            first_start = t
        if prev_end is not None:
            gaps += t - prev_end
    elif kind == "step_fetched":
        fetched.add(e["step"])
    elif kind == "step_finished":
        step_s += e.get("seconds", 0)
        prev_end = last_end = t
    elif kind == "result":
        result = t
print("until the first step (start, cache manifest and config, plan): %.2f s; "
      "%d steps fetched (download, digest, DiffID): %.2f s in all; between steps: %.2f s; "
      "after the last step (the image and its tarball written): %.2f s; result at %.2f s"
      % (first_start or 0, len(fetched), step_s, gaps, (result or 0) - (last_end or 0), result or 0))
PY
}
# fetched_steps: each fetched step with its seconds and its layer's size (run 1).
fetched_steps() {
    events | jq -rs '
        (map(select(.event == "result")) | last | .layers // [] | map({(.step): .size}) | add // {}) as $size
        | map(select(.event == "step_finished" and .cached)) | map("\(.step) \(.seconds * 100 | round / 100) s (\(($size[.step] // 0) / 1e6 * 10 | round / 10) MB)")
        | join(", ")'
}

# The CAs of the host that the base lacks, for the Dockerfile builds: extra_ca in
# benches/lib.sh (see compare_apps.sh).

# buildkit_build ARGS...: BuildKit build of $app's Dockerfile in $ctx with plain progress
# into $work/out; sets LAST_T.
buildkit_build() {
    local t0=$EPOCHREALTIME
    DOCKER_BUILDKIT=1 "$DOCKER" build --progress=plain -f "benches/apps/$app/Dockerfile" \
        --build-arg "EXTRA_CA=$(cat "$work/extra-ca-$app.pem")" "$@" "$ctx" >"$work/out" 2>&1 ||
        return 1
    LAST_T=$(echo "$EPOCHREALTIME - $t0" | bc)
}
# buildkit_cached: "CACHED of STEPS" for the Dockerfile steps ([k/n]) of the last build.
buildkit_cached() {
    python3 - "$work/out" <<'PY'
import re, sys
steps, cached = {}, set()
for line in open(sys.argv[1]):
    m = re.match(r"#(\d+) \[(?:[^\]]* )?(\d+)/(\d+)\]", line)
    if m:
        steps[m.group(1)] = m.group(2)
    m = re.match(r"#(\d+) CACHED", line)
    if m:
        cached.add(m.group(1))
# FROM is "resolved", never CACHED: count the steps after it.
run = {n for n, k in steps.items() if k != "1"}
print("%d of %d" % (len(run & cached), len(run)))
PY
}

declare -A CACHED_KIT IMPORTED_KIT PHASES FETCHED PUSHED
digest_bad=
declare -A COLD_DIFF   # COLD_DIFF[app] = the cold runs whose image differs from run 1's, and in which steps
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for app in $APPS; do
    base=$(base_of "$app")
    ctx=$work/ctx-$app
    cp -r "fixtures/apps/$app" "$ctx"
    ref=$host/cache/$app:buildcache
    kit_ref=$host/bench/$app:buildkit
    kit_tag=nua-bench-registry-cache/$app:buildkit
    for i in $(seq 1 "$RUNS"); do
        # Cold: an empty cache, the base bootstrapped.
        log "$app run $i/$RUNS: nua-pack build, cold"
        cold_cache=$work/cold-$app-$i
        nua_build "$cold_cache" "$work/$app-cold.tar" || fail "cold nua-pack build of $app"
        rec "$app|cold" "$LAST_T"
        cold_digest=$(digest_of)
        layers_of >"$work/layers-$app-$i"
        if [ "$i" = 1 ]; then
            R[$app|digest]=$cold_digest
            # The registry cache, once, untimed, from the warm cache of that cold build.
            log "$app: nua-pack build --cache-to $ref (untimed)"
            NUA_CACHE_DIR=$cold_cache "$pack" build "$ctx" -o "$work/$app-push.tar" --json \
                --cache-to "$ref" --insecure-registry "$host" >"$work/push.json" 2>"$work/err" ||
                fail "nua-pack build --cache-to of $app"
            PUSHED[$app]=$(jq -r 'select(.event == "cache_pushed") | "\(.entries) entries, \(.bytes_sent / 1e6 * 10 | round / 10) MB sent"' "$work/push.json")
            [ -n "${PUSHED[$app]}" ] || fail "nua-pack build --cache-to of $app pushed no cache: $(cat "$work/push.json")"
            # The base for Docker: the same layers, from the same cache (warm, untimed).
            base_tag=nua-base/$base:bench
            [ -n "${base_before[$base_tag]+set}" ] ||
                base_before[$base_tag]=$("$DOCKER" image inspect -f '{{.Id}}' "$base_tag" 2>/dev/null || true)
            NUA_CACHE_DIR=$cold_cache "$pack" base build "$base" -q -t "$base_tag" -o "$work/base.tar"
            "$DOCKER" load -q -i "$work/base.tar" >/dev/null
            rm -f "$work/base.tar"
            extra_ca "$base_tag" >"$work/extra-ca-$app.pem"
            # BuildKit's registry cache: one build with the cache inline, pushed.
            log "$app: BuildKit build with BUILDKIT_INLINE_CACHE=1, pushed to $kit_ref (untimed)"
            "$DOCKER" builder prune -af >/dev/null
            docker_tags+=("$kit_ref")
            buildkit_build --build-arg BUILDKIT_INLINE_CACHE=1 -t "$kit_ref" || fail "BuildKit build of $app"
            "$DOCKER" push -q "$kit_ref" >/dev/null || "$DOCKER" push "$kit_ref" >&2 || fail "docker push $kit_ref"
        elif [ "$cold_digest" != "${R[$app|digest]}" ]; then
            # Not what is measured here (the registry cache holds run 1's layers, and must
            # give run 1's image), but said: two cold builds should make the same image.
            diff_steps=$({ diff "$work/layers-$app-1" "$work/layers-$app-$i" || true; } | sed -n 's/^> //p' | cut -f1 | paste -sd, -)
            log "warning: $app: cold run $i made $cold_digest, run 1 ${R[$app|digest]}; layers that differ: ${diff_steps:-none (config or manifest only)}"
            COLD_DIFF[$app]+="run $i (${diff_steps:-config or manifest only}); "
        fi
        rm -rf "$cold_cache" "$work/$app-cold.tar" "$work/$app-push.tar"

        # nua-pack with an empty cache and the registry cache.
        log "$app run $i/$RUNS: nua-pack build --cache-from, empty cache"
        nua_build "$work/from-$app-$i" "$work/$app-from.tar" --cache-from "$ref" \
            --insecure-registry "$host" || fail "nua-pack build --cache-from of $app"
        rec "$app|from" "$LAST_T"
        d=$(digest_of)
        R[$app|from_digest]+="$d "
        [ "$d" = "${R[$app|digest]}" ] || { log "$app: --cache-from made $d, the cold build that filled the cache ${R[$app|digest]}"; digest_bad=1; }
        made=$(steps_made)
        [ -z "$made" ] || fail "$app: steps ran with --cache-from: $made"
        if [ "$i" = 1 ]; then
            PHASES[$app]=$(phases)
            FETCHED[$app]="$(count_events step_fetched) steps fetched: $(fetched_steps)"
            R[$app|tarball]=$(stat -c %s "$work/$app-from.tar")
        fi
        rm -rf "$work/from-$app-$i" "$work/$app-from.tar"

        # BuildKit from its registry cache, with nothing of the app in the daemon.
        log "$app run $i/$RUNS: BuildKit --cache-from + docker save"
        "$DOCKER" builder prune -af >/dev/null
        "$DOCKER" rmi "$kit_tag" "$kit_ref" >/dev/null 2>&1 || true
        docker_tags+=("$kit_tag")
        buildkit_build --cache-from "$kit_ref" -t "$kit_tag" || fail "BuildKit build --cache-from of $app"
        tb=$LAST_T
        CACHED_KIT[$app]+="$(buildkit_cached); "
        grep -q "importing cache manifest from $kit_ref" "$work/out" && IMPORTED_KIT[$app]+="yes " || IMPORTED_KIT[$app]+="no "
        t0=$EPOCHREALTIME
        "$DOCKER" save -o "$work/$app-kit.tar" "$kit_tag" || fail "docker save $kit_tag"
        ts=$(echo "$EPOCHREALTIME - $t0" | bc)
        rec "$app|kit_build" "$tb"
        rec "$app|kit_save" "$ts"
        rec "$app|kit" "$(echo "$tb + $ts" | bc)"
        [ "$i" = 1 ] && R[$app|kit_tarball]=$(stat -c %s "$work/$app-kit.tar")
        rm -f "$work/$app-kit.tar"
    done
    log "$app: BuildKit's output of its last timed build:"
    grep -E '^#[0-9]+ (\[|CACHED|importing|DONE|exporting|writing)' "$work/out" | head -n 40 >&2 || true
done

# --- report ---------------------------------------------------------------------------------
secs() { local m; m=$(med "$1"); [ "$m" = n/a ] && echo n/a || echo "$m s"; }
echo "| app | \`nua-pack build\`, fully cold | \`nua-pack build --cache-from\`, empty cache | BuildKit \`--cache-from\` + \`docker save\` | registry cache / cold | registry cache / BuildKit |"
echo "|---|---:|---:|---:|---:|---:|"
for app in $APPS; do
    echo "| $app | $(secs "$app|cold") | $(secs "$app|from") | $(secs "$app|kit") ($(secs "$app|kit_build") + $(secs "$app|kit_save")) | $(ratio "$(med "$app|from")" "$(med "$app|cold")") | $(ratio "$(med "$app|from")" "$(med "$app|kit")") |"
done
echo
for app in $APPS; do
    if [ -z "$digest_bad" ]; then
        echo "- $app: image \`${R[$app|digest]}\` from the registry cache in every run, the digest of the cold build that filled it (run 1)."
    else
        echo "- $app: images from the registry cache: ${R[$app|from_digest]% }; the cold build that filled it: ${R[$app|digest]}."
    fi
    if [ -n "${COLD_DIFF[$app]:-}" ]; then
        echo "- $app: **cold builds not reproducible**: images other than run 1's from ${COLD_DIFF[$app]%; }."
    else
        echo "- $app: every cold run made the same image."
    fi
    echo "- $app: nua-pack tarball $(awk -v b="${R[$app|tarball]}" 'BEGIN { printf "%.1f MB", b / 1e6 }'), \`docker save\` $(awk -v b="${R[$app|kit_tarball]}" 'BEGIN { printf "%.1f MB", b / 1e6 }')."
    echo "- $app: \`--cache-to\` pushed ${PUSHED[$app]}; run 1 with \`--cache-from\`: ${FETCHED[$app]}."
    echo "- $app: where run 1 with \`--cache-from\` spent its time: ${PHASES[$app]}."
    echo "- $app: BuildKit imported its cache manifest, per run: ${IMPORTED_KIT[$app]% }; Dockerfile steps CACHED per run: ${CACHED_KIT[$app]%; }."
done
echo "- medians of $RUNS runs; $(nproc) cores; load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg); $("$DOCKER" version --format 'Docker {{.Server.Version}} ({{.Client.Version}} CLI)'); $(docker-registry --version | awk '{print $NF}') registry on 127.0.0.1; nua-pack $("$pack" --version | cut -d' ' -f2)."
if [ -n "$digest_bad" ]; then
    log "an image built with --cache-from differed from the cold build that filled the cache (see above)"
    exit 1
fi
