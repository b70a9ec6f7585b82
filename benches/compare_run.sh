#!/usr/bin/env bash
# `nua run` and `nua load` against `docker load` + `docker run` of the same tarball, on the
# flask-hello fixture (gunicorn, health check), after a one-line source change: Docker holds
# the previous version of the app (so the base and the dependency layers), not this one.
#
#   RUNS=5 benches/compare_run.sh            # medians of RUNS (default 5)
#   NUA=/path/to/nua RUNS=1 benches/compare_run.sh   # that binary, no cargo build
#
# Measured, each from a state where Docker has v1 of the app and not v2 (v2 is removed with
# `docker rmi` before every timed command, which drops its own layers and keeps v1's):
#   - to first HTTP answer: `nua run APP_FOLDER` (v2 already built: the build is a cache hit,
#     then the thin load, the container, the ports) against `docker load -i v2.tar` followed
#     by `docker run -d -p 127.0.0.1:PORT:8000`; from the command's start until GET / answers
#     200, polled every 20 ms. Also `docker run` alone with v2 already loaded, the floor set
#     by gunicorn's own start.
#   - load: `nua load v2.tar` (thin: only the layers Docker lacks) and `nua load --full`,
#     against `docker load -i v2.tar`: seconds and bytes sent to the daemon.
#
# Needs: a Docker daemon (started by `scripts/test-env.sh setup` when none answers), curl,
# bc, root or the docker group. Uses the tests' cache (~/.cache/nua-tests/nua-cache) as a
# hard-linked copy when it is there, else bootstraps the python base (a minute more).
# Cleans up its containers, images and temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/lib.sh
RUNS=${RUNS:-5}
DOCKER=${DOCKER:-/usr/bin/docker}
log() { echo "compare_run: $*" >&2; }

if [ -z "${NUA:-}" ]; then
    cargo build --release --locked --bin nua >&2
    NUA=$PWD/target/release/nua
fi
work=$(mktemp -d)
app=$work/app
V1=bench-run/flask:v1
V2=nua-bench-run-flask:1.0-1
cleanup() {
    "$DOCKER" rm -f bench-run-nua bench-run-docker >/dev/null 2>&1 || true
    "$DOCKER" rmi -f "$V1" "$V2" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

shared=${XDG_CACHE_HOME:-$HOME/.cache}/nua-tests/nua-cache
if [ -d "$shared/blobs" ]; then cp -al "$shared" "$work/cache"; else mkdir -p "$work/cache"; fi
export NUA_CACHE_DIR=$work/cache SOURCE_DATE_EPOCH=1700000000

cp -r fixtures/apps/flask-hello "$app"
sed -i 's/^id = "flask-hello"/id = "bench-run-flask"/' "$app/nua-config.toml"
log "building v1 and v2 (v2: one line of app.py changed)"
"$NUA" build "$app" -q -o "$work/v1.tar" -t "$V1" >&2
sed -i 's/return "ok\\n"/return "ok!\\n"/' "$app/app.py"
"$NUA" build "$app" -q -o "$work/v2.tar" >&2
"$DOCKER" rmi -f "$V1" "$V2" >/dev/null 2>&1 || true
"$DOCKER" load -q -i "$work/v1.tar" >/dev/null

# While `nua run` starts, its port is looked for every 10 ms with shell builtins only: a
# `grep` per look would take CPU from it that Docker's side, whose port is chosen
# beforehand, never loses (compare_watch.sh measured 0.09 s of 0.6 on 2 cores).
# port_in FILE: sets `port` to that of the first `http://127.0.0.1:PORT` FILE shows.
port_in() {
    local line
    while IFS= read -r line; do
        [[ $line =~ http://127\.0\.0\.1:([0-9]+) ]] && { port=${BASH_REMATCH[1]}; return 0; }
    done <"$1"
    return 1
}
# pause: 10 ms, without a process (a read that times out on a FIFO nobody writes).
mkfifo "$work/never"
exec {never}<>"$work/never"
pause() { read -r -t 0.01 -u "$never" _ || true; }

# Remove v2 from Docker (its own layers go; v1's stay).
reset() {
    "$DOCKER" rm -f bench-run-nua bench-run-docker >/dev/null 2>&1 || true
    "$DOCKER" rmi -f "$V2" >/dev/null 2>&1 || true
}

declare -a nua_run docker_run docker_run_only thin full dload
thin_bytes=0
full_bytes=0
for i in $(seq 1 "$RUNS"); do
    log "run $i of $RUNS"
    reset
    t0=$(now)
    "$NUA" run "$app" --name bench-run-nua >"$work/run.out" 2>"$work/run.err" &
    pid=$!
    port=""
    for _ in $(seq 1 3000); do
        port_in "$work/run.err" && break
        pause
    done
    [ -n "$port" ] || { cat "$work/run.err" >&2; exit 1; }
    nua_run+=("$(first_answer "$port" "$t0")")
    kill -INT "$pid"
    wait "$pid" || true

    reset
    port=$(free_port)
    t0=$(now)
    "$DOCKER" load -q -i "$work/v2.tar" >/dev/null
    "$DOCKER" run -d --name bench-run-docker -p "127.0.0.1:$port:8000" "$V2" >/dev/null
    docker_run+=("$(first_answer "$port" "$t0")")
    "$DOCKER" rm -f bench-run-docker >/dev/null

    port=$(free_port)
    t0=$(now)
    "$DOCKER" run -d --name bench-run-docker -p "127.0.0.1:$port:8000" "$V2" >/dev/null
    docker_run_only+=("$(first_answer "$port" "$t0")")

    reset
    t0=$(now)
    json=$("$NUA" load "$work/v2.tar" --json)
    thin+=("$(echo "$(now) - $t0" | bc)")
    thin_bytes=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_sent"])')
    thin_layers=$(echo "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["layers_sent"], "of", d["layers"])')

    reset
    t0=$(now)
    json=$("$NUA" load "$work/v2.tar" --json --full)
    full+=("$(echo "$(now) - $t0" | bc)")
    full_bytes=$(echo "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_sent"])')

    reset
    dload+=("$(time_it "$DOCKER" load -q -i "$work/v2.tar")")
done

med() { printf '%s\n' "$@" | median; }
mb() { echo "scale=3; $1 / 1000000" | bc | sed "s/^\./0./"; }
tar_bytes=$(stat -c %s "$work/v2.tar")
echo
echo "flask-hello after a one-line change, Docker holding the previous version; medians of $RUNS, $(nproc) cores."
echo
echo "| to first HTTP answer | seconds |"
echo "|---|---|"
echo "| \`nua run APP\` (built; thin load, run) | $(med "${nua_run[@]}") |"
echo "| \`docker load -i v2.tar\` + \`docker run -d -p\` | $(med "${docker_run[@]}") |"
echo "| \`docker run -d -p\` alone, image loaded (gunicorn's start) | $(med "${docker_run_only[@]}") |"
echo
echo "| load of v2.tar ($(mb "$tar_bytes") MB) | seconds | MB sent |"
echo "|---|---|---|"
echo "| \`nua load\` (thin, $thin_layers layers sent) | $(med "${thin[@]}") | $(mb "$thin_bytes") |"
echo "| \`nua load --full\` | $(med "${full[@]}") | $(mb "$full_bytes") |"
echo "| \`docker load -i\` | $(med "${dload[@]}") | $(mb "$tar_bytes") |"
