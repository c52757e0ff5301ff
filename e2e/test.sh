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
need cargo go python3 curl openssl node npm chromium lua5.1 gcc buildah runc ip iptables ipset nsenter
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

step "formatting"
cargo fmt --all -- --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --all-targets --locked

step "unit and integration tests (operator, media node over loopback)"
cargo test --workspace --exclude sanctum-e2e --locked

step "browser test: Chromium publishes over WHIP, a second page subscribes over WHEP"
(cd media-node/web && npm ci --no-audit --no-fund --loglevel=error)
SANCTUM_MEDIA_NODE_BIN="$TARGET_DIR/debug/sanctum-media-node" node media-node/web/browser-test.mjs

step "container images: static binaries, operator and media-node images, the e2e network probe (no Docker daemon)"
e2e/images.sh --test

CLUSTER="sanctum-test-$$"
export SANCTUM_MOTO_PORT="${SANCTUM_MOTO_PORT:-4567}"
cleanup() { "$ROOT/e2e/controlplane/cluster.sh" down "$CLUSTER" || true; }
trap cleanup EXIT
if [ -n "${KUBECONFIG:-}" ]; then
  step "e2e against the cluster in KUBECONFIG ($KUBECONFIG), with a local AWS emulator"
  eval "$("$ROOT/e2e/controlplane/cluster.sh" moto "$CLUSTER")"
else
  step "local control plane and AWS emulator ($CLUSTER)"
  eval "$("$ROOT/e2e/controlplane/cluster.sh" up "$CLUSTER")"
fi

step "test tools: kstatus, kubeconform, helm-docs, checkov"
"$ROOT/e2e/controlplane/cluster.sh" build-tools

step "chart: CRD copies, Argo CD health checks (Lua), helm lint, kubeconform, checkov"
"$ROOT/e2e/chart-check.sh"

step "e2e tests"
cargo test -p sanctum-e2e --locked -- --test-threads 4
