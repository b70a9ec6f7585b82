#!/usr/bin/env bash
# What an upgrade costs the users of a site: requests lost and the 99th percentile latency
# under load, while the PostgreSQL counter fixture is upgraded (a changed setting, so its
# container is replaced).
#
# - nua: `nua deploy` of the changed file; the site behind Nua's own nginx. The new app starts
#   beside the old one, nginx switches once it is healthy, the old one drains 2 s
#   (`NUA_DRAIN_SECONDS=2`) and stops.
# - docker-compose (Debian's 1.29): `docker-compose up -d` of the changed file, behind an nginx
#   of the same build proxying to the published port. Compose stops the old container before
#   it starts the new one.
#
# Load: wrk, 2 threads, 8 keep-alive connections, 12 s, GET /health with the site's Host,
# the upgrade started 3 s in; both sites name the app's image, already in Docker. Lost =
# socket errors (connect, read, write, timeout after 10 s) + non-2xx answers.
#
#   RUNS=3 benches/compare_upgrade.sh                  # medians of RUNS (default 3)
#   NUA=/path/to/nua RUNS=1 benches/compare_upgrade.sh # that binary, no cargo build
#
# Needs: a Docker daemon (`scripts/test-env.sh setup` starts one), nginx-light, python3, root
# or the docker group; installs Debian's docker-compose and wrk when missing. Uses the tests'
# cache (~/.cache/nua-tests/nua-cache) as a hard-linked copy when it is there. Cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/lib.sh
RUNS=${RUNS:-3}
log() { echo "compare_upgrade: $*" >&2; }

command -v docker-compose >/dev/null || apt-get install -y -q docker-compose >&2
command -v wrk >/dev/null || apt-get install -y -q wrk >&2
if [ -z "${NUA:-}" ]; then
    cargo build --release --locked --bin nua >&2
    NUA=$PWD/target/release/nua
fi
work=$(mktemp -d)
chmod 755 "$work"
LABEL=bench-upgrade
HOST=bench-upgrade.test
NUA_PORT=7300
COMPOSE_PROXY_PORT=7310
cleanup() {
    "$NUA" remove "$LABEL" --volumes >/dev/null 2>&1 || true
    [ -f "$work/proxy/run/nginx.pid" ] && kill -QUIT "$(cat "$work/proxy/run/nginx.pid")" 2>/dev/null || true
    [ -f "$work/cnginx/nginx.pid" ] && kill -QUIT "$(cat "$work/cnginx/nginx.pid")" 2>/dev/null || true
    (cd "$work" && docker-compose -p benchupgrade down -v >/dev/null 2>&1) || true
    rm -rf "$work"
}
trap cleanup EXIT

shared=${XDG_CACHE_HOME:-$HOME/.cache}/nua-tests/nua-cache
if [ -d "$shared/blobs" ]; then cp -al "$shared" "$work/cache"; else mkdir -p "$work/cache"; fi
export NUA_CACHE_DIR=$work/cache NUA_STATE_DIR=$work/state NUA_PROXY=own NUA_ACME=off \
    NUA_PROXY_DIR=$work/proxy NUA_HTTP_PORT=$NUA_PORT NUA_HTTPS_PORT=$((NUA_PORT + 1)) \
    NUA_DRAIN_SECONDS=2

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
site v0
log "building and deploying the app behind nua's nginx"
"$NUA" deploy "$work/deploy.toml" -q >&2
APP_IMAGE=$("$NUA" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["image"])')
DB_IMAGE=$("$NUA" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["providers"][0]["image"])')
# From now on the site names the image Docker has, as compose does: no build in the upgrade.
IMAGE=$APP_IMAGE

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
compose() {
    cat >"$work/docker-compose.yml" <<EOF
version: "2.4"
services:
  database:
    image: $DB_IMAGE
    environment:
      POSTGRES_USER: bench
      POSTGRES_PASSWORD: bench-password
      POSTGRES_DB: bench
    volumes:
      - data:/var/lib/postgresql/data
  app:
    image: $APP_IMAGE
    init: true
    environment:
      INSTANCE: $LABEL
      DB_HOST: database
      DB_USER: bench
      DB_PASSWORD: bench-password
      DB_NAME: bench
      GREETING: "$1"
    ports:
      - "127.0.0.1:$port:8000"
    depends_on:
      database:
        condition: service_healthy
volumes:
  data: {}
EOF
}
compose v0
(cd "$work" && docker-compose -p benchupgrade up -d >/dev/null 2>&1)
mkdir -p "$work/cnginx/logs" "$work/cnginx/temp"
cat >"$work/cnginx/nginx.conf" <<EOF
pid $work/cnginx/nginx.pid;
error_log $work/cnginx/logs/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $work/cnginx/temp/body;
    proxy_temp_path $work/cnginx/temp/proxy;
    server {
        listen $COMPOSE_PROXY_PORT;
        server_name $HOST;
        location / {
            proxy_pass http://127.0.0.1:$port;
            proxy_http_version 1.1;
            proxy_set_header Host \$host;
        }
    }
}
EOF
/usr/sbin/nginx -c "$work/cnginx/nginx.conf" -e "$work/cnginx/logs/error.log"
first_answer "$port" "$(now)" >/dev/null

# load_during PORT CMD...: wrk against PORT while CMD runs 3 s in; prints "lost p99_ms".
load_during() {
    local proxy_port=$1
    shift
    wrk -t2 -c8 -d12s --timeout 10s --latency -H "Host: $HOST" "http://127.0.0.1:$proxy_port/health" >"$work/wrk.out" &
    local wrk_pid=$!
    sleep 3
    "$@" >/dev/null 2>&1 || { echo "benchmark command failed: $*" >&2; kill $$; }
    wait "$wrk_pid"
    grep -E "Socket errors|Non-2xx" "$work/wrk.out" | sed "s/^/compare_upgrade:   /" >&2 || true
    python3 - "$work/wrk.out" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
lost = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
lost += int(m.group(1)) if m else 0
total = int(re.search(r"(\d+) requests in", text).group(1))
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
print(lost, round(float(p99.group(1)) * scale, 1), total)
EOF
}

declare -a nua_lost nua_p99 nua_total compose_lost compose_p99 compose_total
for i in $(seq 1 "$RUNS"); do
    log "run $i of $RUNS: nua"
    site "v$i"
    read -r lost p99 total < <(load_during "$NUA_PORT" "$NUA" deploy "$work/deploy.toml" -q)
    nua_lost+=("$lost"); nua_p99+=("$p99"); nua_total+=("$total")
    log "run $i of $RUNS: docker-compose"
    compose "v$i"
    read -r lost p99 total < <(cd "$work" && load_during "$COMPOSE_PROXY_PORT" docker-compose -p benchupgrade up -d)
    compose_lost+=("$lost"); compose_p99+=("$p99"); compose_total+=("$total")
done

med() { printf '%s\n' "$@" | median; }
echo "| during one upgrade (median of $RUNS) | nua | docker-compose |"
echo "|---|---|---|"
echo "| requests lost (socket errors + non-2xx) | $(med "${nua_lost[@]}") of $(med "${nua_total[@]}") | $(med "${compose_lost[@]}") of $(med "${compose_total[@]}") |"
echo "| p99 latency (ms) | $(med "${nua_p99[@]}") | $(med "${compose_p99[@]}") |"
