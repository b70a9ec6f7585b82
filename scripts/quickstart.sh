#!/usr/bin/env bash
# Install what the builder needs, then build the bundled static-site sample into an image
# tarball with `nua-pack`: no Docker daemon and no root involved in the build itself.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# Until base images are bootstrapped by nua-pack itself, the base is a root filesystem
# tarball made once by mmdebstrap.
rootfs=${XDG_CACHE_HOME:-$HOME/.cache}/nua/rootfs/bookworm-essential-busybox.tar
make_rootfs "$rootfs"

cargo build --release --locked --no-default-features --bin nua-pack
./target/release/nua-pack build fixtures/apps/static-site \
    --base-rootfs "$rootfs" --output target/nua-static-site_1.0-1.tar
echo "then: docker run --rm -p 127.0.0.1:8080:8080 nua-static-site:1.0-1, and open http://127.0.0.1:8080/"
