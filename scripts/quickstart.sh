#!/usr/bin/env bash
# Install what the builder needs, then build the bundled static-site sample into an image
# tarball with `nua-pack`: no Docker daemon and no root involved in the build itself.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# The sandbox maps a full range of ids when `newuidmap` is there (rootless builds).
command -v newuidmap >/dev/null || apt_install uidmap

cargo build --release --locked --bin nua-pack
# The first build bootstraps the `python` base from Debian's archive (its lock pins every
# package), once: later builds take it from the cache.
./target/release/nua-pack build fixtures/apps/static-site \
    --output target/nua-static-site_1.0-1.tar
echo "then: docker run --rm -p 127.0.0.1:8080:8080 nua-static-site:1.0-1, and open http://127.0.0.1:8080/"
