#!/usr/bin/env bash
# The same site on one Docker Engine and on a single-node Docker Swarm: the PostgreSQL counter
# fixture and its database, served through Nua's nginx, deployed then upgraded (a changed
# setting, so the app is replaced).
#
# - docker: `NUA_ENGINE=docker`, Nua's own nginx on the host (`NUA_PROXY=own`); an upgrade
#   starts the new container beside the old one and switches nginx once it is healthy.
# - swarm: `NUA_ENGINE=swarm`, Nua's nginx image as the Swarm service `nua-proxy`; the app and
#   its database are services, an upgrade is Swarm's rolling update (start-first, gated by
#   the health check, watched 5 s before it is done).
#
# Each run: `nua deploy` of a new instance (the images already in Docker), timed until the
# command returns (the app then answers), then `nua deploy --no-backup` of the changed file,
# timed, with wrk sending GET /health through the proxy meanwhile (2 threads, 8 keep-alive
# connections, 12 s, the upgrade started 3 s in; lost = socket errors + non-2xx); then the
# instance is removed with its data. Medians of RUNS.
#
#   RUNS=3 benches/compare_swarm.sh                  # medians of RUNS (default 3)
#   NUA=/path/to/nua RUNS=1 benches/compare_swarm.sh # that binary, no cargo build
#
# Needs: a Docker daemon (`scripts/test-env.sh setup` starts one), nginx-light, python3, root;
# installs Debian's wrk when missing. Makes a swarm (`docker swarm init --advertise-addr
# 127.0.0.1`) when the engine is in none, and leaves it after. Uses the tests' cache
# (~/.cache/nua-tests/nua-cache) as a hard-linked copy when it is there. Cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/lib.sh
RUNS=${RUNS:-3}
log() { echo "compare_swarm: $*" >&2; }

command -v wrk >/dev/null || apt-get install -y -q wrk >&2
if [ -z "${NUA:-}" ]; then
    cargo build --release --locked --bin nua >&2
    NUA=$PWD/target/release/nua
fi
work=$(mktemp -d)
chmod 755 "$work"
LABEL=bench-swarm
HOST=bench-swarm.test
made_swarm=
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = inactive ]; then
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
    made_swarm=1
fi
cleanup() {
    for engine in docker swarm; do
        env_of "$engine"
        "$NUA" remove "$LABEL" --volumes >/dev/null 2>&1 || true
    done
    [ -f "$work/docker/proxy/run/nginx.pid" ] &&
        kill -QUIT "$(cat "$work/docker/proxy/run/nginx.pid")" 2>/dev/null || true
    docker service rm nua-proxy >/dev/null 2>&1 || true
    if [ -n "$made_swarm" ]; then
        docker swarm leave --force >/dev/null 2>&1 || true
        docker network rm docker_gwbridge >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

shared=${XDG_CACHE_HOME:-$HOME/.cache}/nua-tests/nua-cache
if [ -d "$shared/blobs" ]; then cp -al "$shared" "$work/cache"; else mkdir -p "$work/cache"; fi

# env_of ENGINE: the settings of nua for ENGINE, each with its state, proxy and port.
env_of() {
    local port
    case $1 in
    docker) port=7320 ;;
    swarm) port=7330 ;;
    esac
    PROXY_PORT=$port
    export NUA_ENGINE=$1 NUA_CACHE_DIR=$work/cache NUA_STATE_DIR=$work/$1/state NUA_ACME=off \
        NUA_PROXY_DIR=$work/$1/proxy NUA_HTTP_PORT=$port NUA_HTTPS_PORT=$((port + 1)) \
        NUA_DRAIN_SECONDS=2
    if [ "$1" = docker ]; then export NUA_PROXY=own; else export NUA_PROXY=swarm; fi
}

IMAGE=$PWD/fixtures/apps/pg-counter
site() {
    cat >"$work/deploy.toml" <<EOF
[[site]]
image = "$IMAGE"
label = "$LABEL"
domain = "$HOST"
env = { GREETING = "$1" }
EOF
}
log "building the app and the images once"
env_of docker
site v0
"$NUA" deploy "$work/deploy.toml" -q >&2
IMAGE=$("$NUA" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["image"])')
"$NUA" remove "$LABEL" --volumes >/dev/null
env_of swarm
site v0
"$NUA" deploy "$work/deploy.toml" -q >&2
"$NUA" remove "$LABEL" --volumes >/dev/null

# answers: GET /health through the proxy answers 200.
answers() { curl -fs -o /dev/null -H "Host: $HOST" "http://127.0.0.1:$PROXY_PORT/health"; }

# upgrade_under_load: wrk through the proxy, the upgrade 3 s in; prints "seconds lost p99_ms
# requests".
upgrade_under_load() {
    wrk -t2 -c8 -d12s --timeout 10s --latency -H "Host: $HOST" \
        "http://127.0.0.1:$PROXY_PORT/health" >"$work/wrk.out" &
    local wrk_pid=$! seconds
    sleep 3
    site v1
    seconds=$(time_it "$NUA" deploy "$work/deploy.toml" -q --no-backup)
    wait "$wrk_pid"
    python3 - "$work/wrk.out" "$seconds" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
lost = 0
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
if m:
    lost += sum(int(g) for g in m.groups())
m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if m:
    lost += int(m.group(1))
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
total = re.search(r"(\d+) requests in", text).group(1)
print(sys.argv[2], lost, round(float(p99.group(1)) * scale), total)
EOF
}

for engine in docker swarm; do
    : >"$work/$engine.deploy" >"$work/$engine.upgrade"
done
for run in $(seq 1 "$RUNS"); do
    for engine in docker swarm; do
        env_of "$engine"
        site v0
        time_it "$NUA" deploy "$work/deploy.toml" -q >>"$work/$engine.deploy"
        answers || { echo "no answer after the deploy on $engine" >&2; exit 1; }
        upgrade_under_load >>"$work/$engine.upgrade"
        "$NUA" remove "$LABEL" --volumes >/dev/null
        log "run $run, $engine: deploy $(tail -1 "$work/$engine.deploy") s, upgrade (s lost p99) $(tail -1 "$work/$engine.upgrade")"
    done
done

col() { awk -v c="$1" '{print $c}' "$2" | median; }
printf '\n| median of %s | docker | swarm |\n|---|---|---|\n' "$RUNS"
printf '| deploy of a new instance (s) | %s | %s |\n' \
    "$(median <"$work/docker.deploy")" "$(median <"$work/swarm.deploy")"
printf '| upgrade (s) | %s | %s |\n' "$(col 1 "$work/docker.upgrade")" "$(col 1 "$work/swarm.upgrade")"
printf '| requests lost during the upgrade | %s of %s | %s of %s |\n' \
    "$(col 2 "$work/docker.upgrade" | cut -d. -f1)" "$(col 4 "$work/docker.upgrade" | cut -d. -f1)" \
    "$(col 2 "$work/swarm.upgrade" | cut -d. -f1)" "$(col 4 "$work/swarm.upgrade" | cut -d. -f1)"
printf '| p99 latency during the upgrade (ms) | %s | %s |\n' \
    "$(col 3 "$work/docker.upgrade" | cut -d. -f1)" "$(col 3 "$work/swarm.upgrade" | cut -d. -f1)"
