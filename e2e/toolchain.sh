#!/usr/bin/env bash
# The Rust cross toolchain of the images and the test build: zig (the C/C++ compiler and
# linker cargo-zigbuild drives, from PyPI's `ziglang`) and cargo-zigbuild, installed into
# the cache on first use, and the musl target. Prints what to export:
#
#   eval "$(e2e/toolchain.sh [TARGET...])"     # default target: this machine's musl one
set -euo pipefail
ZIG_VERSION=0.14.1
ZIGBUILD_VERSION=0.20.1
CACHE="${SANCTUM_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sanctum-e2e}"
TOOLS="$CACHE/tools"
log() { printf '[toolchain] %s\n' "$*" >&2; }

# zig gets a directory of its own on PATH: the virtualenv's bin would also put its
# python3 (without PyYAML) ahead of the system's.
if [ ! -x "$TOOLS/zig-bin/zig" ]; then
  log "installing zig $ZIG_VERSION (PyPI ziglang) into $TOOLS/zig"
  [ -x "$TOOLS/zig/bin/pip" ] || python3 -m venv "$TOOLS/zig"
  "$TOOLS/zig/bin/pip" install --quiet --disable-pip-version-check "ziglang==$ZIG_VERSION"
  mkdir -p "$TOOLS/zig-bin"
  ln -sf "$("$TOOLS/zig/bin/python3" -c 'import ziglang, os; print(os.path.dirname(ziglang.__file__))')/zig" \
    "$TOOLS/zig-bin/zig"
fi
if [ ! -x "$TOOLS/cargo-zigbuild/bin/cargo-zigbuild" ]; then
  log "installing cargo-zigbuild $ZIGBUILD_VERSION into $TOOLS/cargo-zigbuild"
  cargo install --quiet --locked --version "$ZIGBUILD_VERSION" --root "$TOOLS/cargo-zigbuild" cargo-zigbuild >&2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=("$(uname -m | sed 's/arm64/aarch64/')-unknown-linux-musl"); fi
installed="$(rustup target list --installed)"
for target in "${targets[@]}"; do
  grep -qx "$target" <<<"$installed" || rustup target add "$target" >&2
done
echo "export PATH=\"$TOOLS/zig-bin:$TOOLS/cargo-zigbuild/bin:\$PATH\""
echo "export SANCTUM_MUSL_TARGET=${targets[0]}"
