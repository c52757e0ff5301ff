#!/usr/bin/env bash
# Runs every test of the repository: formatting, lints, unit tests, the container images,
# then the e2e suite against a real Kubernetes control plane and AWS emulator.
#
# Without KUBECONFIG, a local control plane with one real node is built (first run only)
# and started by e2e/controlplane/cluster.sh, and stopped again at the end. With
# KUBECONFIG set, the e2e suite runs against that cluster instead (the real-node tests
# then need what README.md's "Run every test" names).
#
# A missing prerequisite is an error, never a skipped test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*" >&2; }
need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "error: '$tool' is required but not installed" >&2; exit 1; }
  done
}
need cargo go python3 curl openssl node npm chromium lua5.1 gcc buildah runc ip iptables ipset nsenter turnserver
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# One Rust build serves the lints, the tests and the images: everything is compiled once,
# for the static musl target (zig as C/C++ compiler and linker), and the test binaries run
# here like any static program. Release images are compiled by e2e/images.sh alone.
eval "$(e2e/toolchain.sh)"
MUSL="$SANCTUM_MUSL_TARGET"
BIN_DIR="$TARGET_DIR/$MUSL/debug"

# The Go and Python tools (control plane, real node, chart tools, moto) compile in the
# background while Rust compiles: each leaves the other's idle phases to it.
TOOLS_LOG="$(mktemp)"
step "Go and Python tools build in the background (control plane, real node, chart tools; log $TOOLS_LOG)"
# In a session of its own, so that a failing run stops the whole build with it.
setsid bash -c 'e2e/controlplane/cluster.sh build && e2e/controlplane/cluster.sh build-tools' >"$TOOLS_LOG" 2>&1 </dev/null &
TOOLS_PID=$!
CLUSTER="sanctum-test-$$"
CLUSTER_STARTED=false
cleanup() {
  kill -- "-$TOOLS_PID" 2>/dev/null || true
  if $CLUSTER_STARTED; then "$ROOT/e2e/controlplane/cluster.sh" down "$CLUSTER" || true; fi
}
trap cleanup EXIT
wait_tools() {
  if ! wait "$TOOLS_PID"; then
    echo "error: building the tools failed:" >&2; tail -40 "$TOOLS_LOG" >&2; exit 1
  fi
  grep -E '^\[cluster\] (built|installing)' "$TOOLS_LOG" >&2 || true
}

step "formatting"
cargo fmt --all -- --check

step "layering: no import cycle between sibling modules, no source file over 600 lines"
python3 e2e/layering/check.py

step "IAM: each policy in docs/ grants exactly the S3 and KMS actions its identity's code calls"
cargo fetch --locked >/dev/null
python3 e2e/iam/check.py

# The lints ride on that build: clippy's driver compiles this workspace's own crates (it
# lints, then generates code like rustc), and the dependencies compile once, with rustc,
# for the lints, the tests and the images alike. `cargo clippy` would compile every
# dependency a second time in check mode. CLIPPY_ARGS is how cargo-clippy passes `-D
# warnings` to the driver; the test runs below keep the same driver, so nothing rebuilds.
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)"
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

step "lints and build (clippy -D warnings on every target of the workspace)"
cargo zigbuild --workspace --all-targets --locked --target "$MUSL"

step "unit and integration tests (operator, media node over loopback)"
cargo-zigbuild test --workspace --exclude sanctum-e2e --locked --target "$MUSL"

step "browser test: Chromium publishes over WHIP, a second page subscribes over WHEP"
(cd media-node/web && npm ci --no-audit --no-fund --loglevel=error)
SANCTUM_MEDIA_NODE_BIN="$BIN_DIR/sanctum-media-node" node media-node/web/browser-test.mjs

step "visit page: a clinician and a patient in Chromium see each other; leaving and idleness are told in words"
SANCTUM_MEDIA_NODE_BIN="$BIN_DIR/sanctum-media-node" node media-node/web/visit-test.mjs

step "firewalled browser calls: Chromium in a network namespace that refuses UDP (ICE-TCP), then UDP and the node's TCP media port too (TURN through coturn)"
SANCTUM_MEDIA_NODE_BIN="$BIN_DIR/sanctum-media-node" e2e/firewall/call.sh tcp
SANCTUM_MEDIA_NODE_BIN="$BIN_DIR/sanctum-media-node" e2e/firewall/call.sh turn

step "container images of this build: operator, media node, the e2e network probe (no Docker daemon)"
e2e/images.sh --test --prebuilt "$BIN_DIR"

step "waiting for the tools"
wait_tools

export SANCTUM_MOTO_PORT="${SANCTUM_MOTO_PORT:-4567}"
CLUSTER_STARTED=true
if [ -n "${KUBECONFIG:-}" ]; then
  step "e2e against the cluster in KUBECONFIG ($KUBECONFIG), with a local AWS emulator"
  eval "$("$ROOT/e2e/controlplane/cluster.sh" moto "$CLUSTER")"
else
  step "local control plane and AWS emulator ($CLUSTER)"
  eval "$("$ROOT/e2e/controlplane/cluster.sh" up "$CLUSTER")"
fi

step "chart: CRD copies, Argo CD health checks (Lua), helm lint, kubeconform, checkov"
"$ROOT/e2e/chart-check.sh"

# The whole workspace is selected, as in the build: `-p sanctum-e2e` alone would unify
# features differently and recompile a hundred crates. The unit tests run again (seconds).
step "e2e tests (and the unit tests again)"
cargo-zigbuild test --workspace --locked --target "$MUSL" -- --test-threads 4
