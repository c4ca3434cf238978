#!/usr/bin/env bash
# Builds the two OCI images, `ww` and `ww-operator`, with buildah (no Docker engine), as OCI
# archives under $CARGO_TARGET_DIR/images/, and prints their digests and sizes:
#
#   scripts/images.sh            build (release binaries), twice, and check both builds have one digest
#   scripts/images.sh --test     also start each image's entrypoint and get /healthz
#
# Reproducible on one build host: file times, the image's creation time and its history are fixed
# (--timestamp 0, --omit-history), so the same binaries and the same host libraries (glibc, CA
# certificates, copied from this machine) give the same digest. Load an archive into a cluster's runtime with e.g. `skopeo copy oci-archive:FILE
# docker://REGISTRY/weatherwise/ww:TAG` or `kind load image-archive FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/backends.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weatherwise/target}"
test_run=""
[ "${1:-}" = "--test" ] && test_run=1
command -v buildah >/dev/null || { log "installing buildah"; apt_install buildah; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
out="$CARGO_TARGET_DIR/images"
storage="$WW_STATE/buildah"
mkdir -p "$out" "$storage"
bah() { buildah --storage-driver vfs --root "$storage/root" --runroot "$storage/run" "$@"; }

log "cargo build --release -p ww -p ww-operator"
cargo build --release --locked -p ww -p ww-operator >&2

# The root filesystem of one binary's image.
rootfs() { # binary dir
  local bin="$1" dir="$2"
  rm -rf "$dir" && mkdir -p "$dir/rootfs/usr/local/bin" "$dir/rootfs/etc/ssl/certs" "$dir/rootfs/tmp"
  cp "$CARGO_TARGET_DIR/release/$bin" "$dir/rootfs/usr/local/bin/$bin"
  ln -s "$bin" "$dir/rootfs/usr/local/bin/entrypoint"
  # The shared libraries the binary loads, at the paths the loader looks for them.
  ldd "$CARGO_TARGET_DIR/release/$bin" | awk '/=> \//{print $3} $1 ~ /^\//{print $1}' | sort -u | while read -r lib; do
    mkdir -p "$dir/rootfs$(dirname "$lib")"
    cp -L "$lib" "$dir/rootfs$lib"
  done
  cp /etc/ssl/certs/ca-certificates.crt "$dir/rootfs/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' >"$dir/rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$dir/rootfs/etc/group"
  chmod 1777 "$dir/rootfs/tmp"
  cp images/Containerfile "$dir/Containerfile"
}

# Builds one image into an OCI archive; prints its manifest digest.
build() { # binary tag archive
  local bin="$1" tag="$2" archive="$3" dir="$out/$1-context"
  rootfs "$bin" "$dir"
  bah build --quiet --timestamp 0 --omit-history --layers=false --build-arg BINARY="$bin" \
    -f "$dir/Containerfile" -t "$tag" "$dir" >/dev/null
  rm -f "$archive"
  bah push --quiet --format oci "$tag" "oci-archive:$archive:$tag" >/dev/null
  # The manifest's digest, from the archive's index.
  tar -xOf "$archive" index.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifests"][0]["digest"])'
}

status=0
for bin in ww ww-operator; do
  tag="localhost/weatherwise/$bin:$version"
  archive="$out/$bin.oci.tar"
  log "building $tag"
  first=$(build "$bin" "$tag" "$archive")
  second=$(build "$bin" "$tag" "$archive.again")
  size=$(du -b "$archive" | cut -f1)
  binary=$(du -b "$CARGO_TARGET_DIR/release/$bin" | cut -f1)
  if [ "$first" = "$second" ]; then
    echo "$tag  $first  $((size / 1024 / 1024)) MiB archive ($((binary / 1024 / 1024)) MiB binary)  reproducible"
  else
    echo "error: $tag built twice gave two digests: $first and $second" >&2
    status=1
  fi
  rm -f "$archive.again"
done
[ "$status" -eq 0 ] || exit "$status"

if [ -n "$test_run" ]; then
  # Start each image's entrypoint as its non-root user (`ww dev`: no backends needed) and ask it
  # for /healthz.
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  c=$(bah from --quiet "oci-archive:$out/ww.oci.tar")
  trap 'bah rm "$c" >/dev/null 2>&1 || true' EXIT
  bah run --isolation chroot --network host --user 65532:65532 "$c" -- /usr/local/bin/entrypoint dev \
    --listen "127.0.0.1:$port" --data-dir /tmp/ww >"$out/ww-run.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  if curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then
    echo "ww image: entrypoint answered /healthz on 127.0.0.1:$port"
  else
    echo "error: the ww image did not answer /healthz; its output:" >&2
    tail -n 30 "$out/ww-run.log" >&2
    status=1
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # The operator needs a cluster for `run`; its entrypoint is proven by --version.
  o=$(bah from --quiet "oci-archive:$out/ww-operator.oci.tar")
  if v=$(bah run --isolation chroot --user 65532:65532 "$o" -- /usr/local/bin/entrypoint --version); then
    echo "ww-operator image: entrypoint runs ($v)"
  else
    status=1
  fi
  bah rm "$o" >/dev/null
fi
exit "$status"
