#!/usr/bin/env bash
# Builds the container images of both binaries from operator/Dockerfile and
# media-node/Dockerfile, with no Docker daemon: static musl binaries (cargo zigbuild),
# staged under target/image/, then the Dockerfiles built by Buildah (daemonless; Podman
# or Docker when Buildah is absent) and written as OCI archives.
#
#   e2e/images.sh [--platform linux/amd64[,linux/arm64]] [--test] [--load] [--prebuilt DIR]
#
#   --platform   architectures to build (default: this machine's)
#   --test       also build the e2e network probe image (tests only)
#   --load       also load the images into the local Docker or Podman image store
#   --prebuilt   take this machine's static binaries from DIR (stripped) instead of
#                compiling them: e2e/test.sh passes its own musl build, so the tests
#                compile the workspace once
#
# Output: $SANCTUM_E2E_CACHE/images/<name>-<version>-<arch>.oci.tar and a size table.
# The zig toolchain (PyPI `ziglang`) and cargo-zigbuild are installed into the cache on
# first use (e2e/toolchain.sh); nothing is installed system-wide except Debian's buildah
# when it is missing and apt-get is available.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CACHE="${SANCTUM_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sanctum-e2e}"
OUT="$CACHE/images"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# The build context the Dockerfiles read (.dockerignore admits only this), inside the
# repository whatever CARGO_TARGET_DIR says.
STAGE="$ROOT/target/image"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
REVISION="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
REGISTRY="${SANCTUM_IMAGE_REGISTRY:-ghcr.io/sanctum-dev}"

log() { printf '[images] %s\n' "$*" >&2; }

platforms=""
test_images=false
load=false
prebuilt=""
while [ $# -gt 0 ]; do
  case "$1" in
    --platform) platforms="$2"; shift 2 ;;
    --test) test_images=true; shift ;;
    --load) load=true; shift ;;
    --prebuilt) prebuilt="$2"; shift 2 ;;
    *) echo "usage: $0 [--platform linux/amd64,linux/arm64] [--test] [--load] [--prebuilt DIR]" >&2; exit 2 ;;
  esac
done
if [ -z "$platforms" ]; then
  case "$(uname -m)" in
    x86_64) platforms=linux/amd64 ;;
    aarch64 | arm64) platforms=linux/arm64 ;;
    *) echo "unsupported machine $(uname -m)" >&2; exit 1 ;;
  esac
fi

rust_target() {
  case "$1" in
    linux/amd64) echo x86_64-unknown-linux-musl ;;
    linux/arm64) echo aarch64-unknown-linux-musl ;;
    *) echo "unsupported platform $1" >&2; exit 1 ;;
  esac
}

# The unprivileged user and the CA certificates of the image. The bundle is Mozilla's
# set as Debian ships it, never this machine's bundle (which may hold local CAs).
rootfs() {
  local dir="$STAGE/rootfs"
  rm -rf "$dir"
  mkdir -p "$dir/etc/ssl/certs" "$dir/tmp"
  chmod 1777 "$dir/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$dir/etc/group"
  local mozilla="${SANCTUM_CA_CERTIFICATES_DIR:-/usr/share/ca-certificates/mozilla}"
  if ! compgen -G "$mozilla/*.crt" >/dev/null; then
    log "no CA certificates in $mozilla (Debian's ca-certificates package); set SANCTUM_CA_CERTIFICATES_DIR"
    exit 1
  fi
  cat "$mozilla"/*.crt >"$dir/etc/ssl/certs/ca-certificates.crt"
}

# Daemonless image builder: buildah when present, else podman or docker.
builder() {
  if command -v buildah >/dev/null; then echo buildah; return; fi
  if command -v podman >/dev/null; then echo podman; return; fi
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker; return; fi
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    log "installing buildah (Debian)"
    apt-get install -y -qq buildah >/dev/null
    echo buildah
    return
  fi
  log "no image builder: install buildah, podman or docker"
  exit 1
}

build_image() { # name dockerfile platform [registry]
  local name=$1 file=$2 platform=$3 registry=${4:-$REGISTRY}
  local arch=${platform#linux/}
  local tag="$registry/$name:$VERSION"
  local archive="$OUT/$name-$VERSION-$arch.oci.tar"
  local tool
  tool="$(builder)"
  local args=(--platform "$platform" --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION"
    -f "$file" -t "$tag")
  rm -f "$archive"
  case "$tool" in
    buildah)
      # vfs storage and chroot isolation: no daemon, no overlay mounts, no user namespaces.
      local store=(--root "$CACHE/buildah/root" --runroot "$CACHE/buildah/run" --storage-driver vfs)
      buildah "${store[@]}" bud --quiet --isolation chroot "${args[@]}" "$ROOT" >/dev/null
      buildah "${store[@]}" push --quiet "$tag" "oci-archive:$archive:$tag"
      ;;
    podman)
      podman build --quiet "${args[@]}" "$ROOT" >/dev/null
      podman save --quiet --format oci-archive -o "$archive" "$tag"
      ;;
    docker)
      docker buildx build --quiet "${args[@]}" --output "type=oci,dest=$archive,name=$tag" "$ROOT" >/dev/null
      ;;
  esac
  if $load; then
    if command -v podman >/dev/null; then podman load -q -i "$archive"; elif command -v docker >/dev/null; then docker load -q -i "$archive"; fi
  fi
  report "$tag" "$arch" "$archive"
}

# Name, architecture, compressed layers (what a pull transfers) and unpacked size.
report() {
  local tag=$1 arch=$2 archive=$3
  python3 - "$tag" "$arch" "$archive" <<'PY'
import json, sys, tarfile
tag, arch, path = sys.argv[1:]
with tarfile.open(path) as t:
    blob = lambda d: t.extractfile("blobs/sha256/" + d.split(":", 1)[1]).read()
    index = json.loads(t.extractfile("index.json").read())
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    layers = sum(l["size"] for l in manifest["layers"])
    unpacked = 0
    import gzip, io
    for l in manifest["layers"]:
        data = blob(l["digest"])
        if l["mediaType"].endswith("gzip"):
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as layer:
            unpacked += sum(m.size for m in layer.getmembers() if m.isfile())
print(f"{tag}\t{arch}\t{layers / 1048576:.1f} MiB compressed\t{unpacked / 1048576:.1f} MiB unpacked\t{path}")
PY
}

mkdir -p "$OUT"
# The probe is always compiled with the rest: one package set means features unify the
# same way on every run, so a run with or without --test never rebuilds the others.
packages=(-p sanctum-operator --bin sanctum -p sanctum-media-node --bin sanctum-media-node
  -p sanctum-netprobe --bin sanctum-netprobe)
rootfs
IFS=, read -r -a list <<<"$platforms"
for platform in "${list[@]}"; do
  target="$(rust_target "$platform")"
  arch=${platform#linux/}
  mkdir -p "$STAGE/$arch"
  if [ -n "$prebuilt" ]; then
    [ "${#list[@]}" = 1 ] || { log "--prebuilt takes one platform"; exit 2; }
    for bin in sanctum sanctum-media-node sanctum-netprobe; do
      [ -x "$prebuilt/$bin" ] || { log "$prebuilt/$bin is missing"; exit 1; }
      # A program interpreter means a dynamic binary, which an empty base cannot run.
      if readelf -l "$prebuilt/$bin" | grep -q INTERP; then log "$prebuilt/$bin is not a static binary"; exit 1; fi
      strip -o "$STAGE/$arch/$bin" "$prebuilt/$bin"
    done
    log "staged the static binaries of $prebuilt"
    continue
  fi
  eval "$("$ROOT/e2e/toolchain.sh" "$target")"
  log "compiling static binaries for $target (profile image: release, stripped)"
  start=$SECONDS
  cargo zigbuild --profile image --locked --target "$target" "${packages[@]}"
  log "compiled in $((SECONDS - start))s"
  for bin in sanctum sanctum-media-node sanctum-netprobe; do
    cp "$TARGET_DIR/$target/image/$bin" "$STAGE/$arch/$bin"
  done
done
for platform in "${list[@]}"; do
  build_image sanctum-operator operator/Dockerfile "$platform"
  build_image sanctum-media-node media-node/Dockerfile "$platform"
  if $test_images; then build_image sanctum-e2e-netprobe e2e/netprobe/Dockerfile "$platform" localhost; fi
done
