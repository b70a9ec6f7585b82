#!/usr/bin/env bash
# Time from `nua deploy` of a site on a new domain to its first answer over HTTPS, with a
# certificate from a real ACME CA: Debian's pebble, its DNS (pebble-challtestsrv) answering
# 127.0.0.1 for every name, so pebble checks the HTTP-01 challenge against Nua's own nginx.
# The PostgreSQL counter fixture, its images already in Docker; each run a domain never seen.
#
#   RUNS=5 benches/https_first_answer.sh                  # median of RUNS (default 5)
#   NUA=/path/to/nua RUNS=1 benches/https_first_answer.sh # that binary, no cargo build
#
# Needs: a Docker daemon (`scripts/test-env.sh setup` starts one), nginx-light, pebble, curl,
# openssl, python3, bc, root or the docker group. Uses the tests' cache as a hard-linked copy
# when it is there. Cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/lib.sh
RUNS=${RUNS:-5}
log() { echo "https_first_answer: $*" >&2; }
if [ -z "${NUA:-}" ]; then
    cargo build --release --locked --bin nua >&2
    NUA=$PWD/target/release/nua
fi
work=$(mktemp -d)
chmod 755 "$work"
HTTP=7320
HTTPS=7321
ACME=7330
pids=()
cleanup() {
    for i in $(seq 0 "$RUNS"); do "$NUA" remove "bench-https-$i" --volumes >/dev/null 2>&1 || true; done
    [ -f "$work/proxy/run/nginx.pid" ] && kill -QUIT "$(cat "$work/proxy/run/nginx.pid")" 2>/dev/null || true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

shared=${XDG_CACHE_HOME:-$HOME/.cache}/nua-tests/nua-cache
if [ -d "$shared/blobs" ]; then cp -al "$shared" "$work/cache"; else mkdir -p "$work/cache"; fi

# pebble's own HTTPS: a CA and a certificate for 127.0.0.1.
mkdir -p "$work/pebble"
(
    cd "$work/pebble"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
        -subj "/CN=bench CA" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout key.pem -out req.csr -subj /CN=localhost 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf
    openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem \
        -days 2 -extfile ext.cnf 2>/dev/null
    cat >pebble.json <<EOF
{"pebble": {"listenAddress": "127.0.0.1:$ACME", "managementListenAddress": "127.0.0.1:$((ACME + 1))",
 "certificate": "$work/pebble/cert.pem", "privateKey": "$work/pebble/key.pem",
 "httpPort": $HTTP, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
EOF
)
pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$((ACME + 2))" \
    -http01 "" -https01 "" -tlsalpn01 "" -management "127.0.0.1:$((ACME + 3))" >"$work/pebble/log" 2>&1 &
pids+=($!)
PEBBLE_VA_NOSLEEP=1 pebble -config "$work/pebble/pebble.json" -dnsserver "127.0.0.1:$((ACME + 2))" \
    >>"$work/pebble/log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null --cacert "$work/pebble/ca.pem" "https://127.0.0.1:$ACME/dir" && break; sleep 0.1; done

export NUA_CACHE_DIR=$work/cache NUA_STATE_DIR=$work/state NUA_PROXY=own NUA_PROXY_DIR=$work/proxy \
    NUA_HTTP_PORT=$HTTP NUA_HTTPS_PORT=$HTTPS NUA_ACME=on \
    NUA_ACME_DIRECTORY="https://127.0.0.1:$ACME/dir" NUA_ACME_CA_BUNDLE=$work/pebble/ca.pem

site() {
    cat >"$work/deploy.toml" <<EOF
[[site]]
image = "$1"
label = "bench-https-$2"
domain = "run$2.bench-https.test"
EOF
}
log "building the app and its database image (not timed)"
site "$PWD/fixtures/apps/pg-counter" 0
NUA_ACME=off "$NUA" deploy "$work/deploy.toml" -q >&2
APP_IMAGE=$("$NUA" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["image"])')
"$NUA" remove bench-https-0 --volumes >/dev/null
curl -s --cacert "$work/pebble/ca.pem" "https://127.0.0.1:$((ACME + 1))/roots/0" -o "$work/root.pem"

declare -a times
for i in $(seq 1 "$RUNS"); do
    log "run $i of $RUNS"
    site "$APP_IMAGE" "$i"
    host="run$i.bench-https.test"
    t0=$(now)
    "$NUA" deploy "$work/deploy.toml" -q >&2
    for _ in $(seq 1 3000); do
        if curl -fs -o /dev/null --cacert "$work/root.pem" --resolve "$host:$HTTPS:127.0.0.1" "https://$host:$HTTPS/"; then
            break
        fi
        sleep 0.02
    done
    times+=("$(echo "$(now) - $t0" | bc)")
    "$NUA" remove "bench-https-$i" --volumes >/dev/null
done
echo "| measure | nua |"
echo "|---|---|"
echo "| \`nua deploy\` of a new domain to its first HTTPS answer, pebble as the CA (s, median of $RUNS) | $(printf '%s\n' "${times[@]}" | median) |"
