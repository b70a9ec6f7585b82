#!/usr/bin/env bash
# `nua deploy` against `docker-compose up -d` (Debian's docker-compose) of the same two
# containers with the same images: the PostgreSQL counter fixture and Nua's postgres-15,
# both already in Docker.
#
#   RUNS=5 benches/compare_deploy.sh            # medians of RUNS (default 5)
#   NUA=/path/to/nua RUNS=1 benches/compare_deploy.sh   # that binary, no cargo build
#
# Measured:
#   - deploy to first answer, from nothing (no container, no volume, a fresh database): from
#     the command's start until GET / (a query of the database) answers 200, polled every
#     20 ms. nua: `nua deploy FILE` (it waits for the database's health check, then the
#     app's); compose: `docker-compose up -d` with `depends_on: condition: service_healthy`,
#     the same gate. Removed between runs (`nua remove --volumes`, `docker-compose down -v`).
#   - a redeploy that changes nothing: `nua deploy FILE` again against `docker-compose up -d`
#     again.
#   - the memory (VmRSS) of `nua server` at rest, one instance deployed, after 5 s.
#
# Needs: a Docker daemon (`scripts/test-env.sh setup` starts one), curl, bc, python3, root
# or the docker group; installs Debian's docker-compose when missing. Uses the tests' cache
# (~/.cache/nua-tests/nua-cache) as a hard-linked copy when it is there. Cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/lib.sh
RUNS=${RUNS:-5}
DOCKER=${DOCKER:-/usr/bin/docker}
log() { echo "compare_deploy: $*" >&2; }

command -v docker-compose >/dev/null || apt-get install -y -q docker-compose >&2
if [ -z "${NUA:-}" ]; then
    cargo build --release --locked --bin nua >&2
    NUA=$PWD/target/release/nua
fi
work=$(mktemp -d)
LABEL=bench-deploy
cleanup() {
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
    "$NUA" remove "$LABEL" --volumes >/dev/null 2>&1 || true
    (cd "$work" && docker-compose -p benchdeploy down -v >/dev/null 2>&1) || true
    rm -rf "$work"
}
trap cleanup EXIT

shared=${XDG_CACHE_HOME:-$HOME/.cache}/nua-tests/nua-cache
if [ -d "$shared/blobs" ]; then cp -al "$shared" "$work/cache"; else mkdir -p "$work/cache"; fi
export NUA_CACHE_DIR=$work/cache NUA_STATE_DIR=$work/state

# Both images into Docker once (a first deploy from the app folder builds and loads them).
cat >"$work/build.toml" <<EOF
[[site]]
image = "$PWD/fixtures/apps/pg-counter"
label = "$LABEL"
EOF
log "building the app and the database image"
"$NUA" deploy "$work/build.toml" -q >&2
APP_IMAGE=$("$NUA" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["image"])')
DB_IMAGE=$("$NUA" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["providers"][0]["image"])')
"$NUA" remove "$LABEL" --volumes >/dev/null
cat >"$work/deploy.toml" <<EOF
[[site]]
image = "$APP_IMAGE"
label = "$LABEL"
EOF

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
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
    environment:
      INSTANCE: $LABEL
      DB_HOST: database
      DB_USER: bench
      DB_PASSWORD: bench-password
      DB_NAME: bench
    ports:
      - "127.0.0.1:$port:8000"
    depends_on:
      database:
        condition: service_healthy
volumes:
  data: {}
EOF

declare -a nua_first compose_first nua_again compose_again
for i in $(seq 1 "$RUNS"); do
    log "run $i of $RUNS"
    t0=$(now)
    "$NUA" deploy "$work/deploy.toml" -q >&2
    nua_port=$("$NUA" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ports"][0]["host"])')
    nua_first+=("$(first_answer "$nua_port" "$t0")")
    nua_again+=("$(time_it "$NUA" deploy "$work/deploy.toml" -q)")
    "$NUA" remove "$LABEL" --volumes >/dev/null

    t0=$(now)
    (cd "$work" && docker-compose -p benchdeploy up -d >/dev/null 2>&1)
    compose_first+=("$(first_answer "$port" "$t0")")
    compose_again+=("$(cd "$work" && time_it docker-compose -p benchdeploy up -d)")
    (cd "$work" && docker-compose -p benchdeploy down -v >/dev/null 2>&1)
done

"$NUA" deploy "$work/deploy.toml" -q >&2
"$NUA" server --interval 30 >/dev/null 2>&1 &
server=$!
sleep 5
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
kill "$server"
wait "$server" 2>/dev/null || true
server=""

med() { printf '%s\n' "$@" | median; }
echo "| measure | nua | docker-compose |"
echo "|---|---|---|"
echo "| deploy from nothing to first answer (s, median of $RUNS) | $(med "${nua_first[@]}") | $(med "${compose_first[@]}") |"
echo "| redeploy, nothing changed (s) | $(med "${nua_again[@]}") | $(med "${compose_again[@]}") |"
echo "| \`nua server\` at rest, one instance (VmRSS) | $((rss_kb / 1024)) MiB | – |"
