#!/usr/bin/env bash
# `nua-pack build` of the static-site sample against `docker build` of the same image, in one
# run: cold (nothing of the app cached), warm (nothing changed), and after a one-line source
# change. Both start from the same base, the `python` base image bootstrapped once by
# `nua-pack base build`: nua-pack finds it in its cache, Docker has it loaded
# (`docker load` of the same layers), so "cold" measures the app's own layers only.
# Docker's one-line-change numbers are also given with `docker save` (nua-pack's result is a
# tarball, docker build's lives in the daemon).
#
#   benches/compare_build.sh            # RUNS=5 by default; prints a Markdown table
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. benches/lib.sh
RUNS=${RUNS:-5}
DOCKER=${DOCKER:-/usr/bin/docker}

cargo build --release --locked --bin nua-pack >/dev/null 2>&1
pack=$PWD/target/release/nua-pack

work=$(mktemp -d)
# The base, once: in a cache every run starts from (hard-linked), and loaded into Docker.
NUA_CACHE_DIR=$work/base-cache "$pack" base build python -q -t nua-bench-base -o "$work/base.tar"
trap 'rm -rf "$work"; $DOCKER rmi -f nua-bench-base nua-bench-site >/dev/null 2>&1 || true' EXIT
app=$work/app
cp -r fixtures/apps/static-site "$app"
# The same image by Dockerfile: app files owned by uid 1000, the start script, the user.
printf '#!/bin/sh\nset -e\ncd /nua/app\nexec python3 -m http.server 8080 --bind 0.0.0.0 --directory /nua/app\n' >"$work/start"
chmod 755 "$work/start"
cat >"$app/Dockerfile" <<'DOCKERFILE'
FROM nua-bench-base
COPY --chown=1000:1000 . /nua/app
COPY start /nua/scripts/start
USER 1000:1000
WORKDIR /nua/app
EXPOSE 8080
CMD ["/nua/scripts/start"]
DOCKERFILE
printf 'Dockerfile\n' >>"$app/.dockerignore"
cp "$work/start" "$app/start"

nua_build() { NUA_CACHE_DIR=$1 "$pack" build "$app" -o "$work/out.tar" -q; }
fresh_cache() { mkdir -p "$1" && cp -al "$work/base-cache/blobs" "$work/base-cache/layers" "$1/"; }
docker_build() { (cd "$app" && DOCKER_BUILDKIT=$1 $DOCKER build $2 -t nua-bench-site . ); }
docker_build_save() { docker_build "$@" && $DOCKER save -o "$work/docker.tar" nua-bench-site; }
change() { echo "<!-- $1 -->" >>"$app/index.html"; }

declare -A t
for i in $(seq 1 "$RUNS"); do
    fresh_cache "$work/cache-$i"
    t[nua_cold]+="$(time_it nua_build "$work/cache-$i") "
    t[nua_warm]+="$(time_it nua_build "$work/cache-$i") "
    change "nua $i"
    t[nua_change]+="$(time_it nua_build "$work/cache-$i") "
    for kit in 0 1; do
        $DOCKER rmi -f nua-bench-site >/dev/null 2>&1 || true
        $DOCKER load -q -i "$work/base.tar" >/dev/null
        t[docker${kit}_cold]+="$(time_it docker_build $kit --no-cache) "
        t[docker${kit}_warm]+="$(time_it docker_build $kit '') "
        change "docker $kit $i"
        t[docker${kit}_change]+="$(time_it docker_build $kit '') "
        t[docker${kit}_change_save]+="$(change "save $kit $i"; time_it docker_build_save $kit '') "
    done
done

m() { tr ' ' '\n' <<<"${t[$1]}" | grep . | median; }
echo "| tool | cold | warm, no change | one-line change |"
echo "|---|---:|---:|---:|"
echo "| \`nua-pack build\` (writes the tarball) | $(m nua_cold) s | $(m nua_warm) s | $(m nua_change) s |"
echo "| \`docker build\` classic | $(m docker0_cold) s | $(m docker0_warm) s | $(m docker0_change) s |"
echo "| \`docker build\` BuildKit | $(m docker1_cold) s | $(m docker1_warm) s | $(m docker1_change) s |"
echo "| classic + \`docker save\` |  |  | $(m docker0_change_save) s |"
echo "| BuildKit + \`docker save\` |  |  | $(m docker1_change_save) s |"
echo
echo "median of $RUNS runs; $(nproc) cores; $($DOCKER version --format 'Docker {{.Server.Version}}')"
