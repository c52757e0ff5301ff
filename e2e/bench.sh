#!/usr/bin/env bash
# Runs every benchmark and writes target/bench/report.md plus the JSON of each:
#   operator convergence (N tenants to Ready vs. a server-side-apply baseline, steady-state
#   writes) on a private local control plane with the AWS emulator, and media-node
#   forwarding (DTLS-SRTP SFU vs. a plain UDP relay) over loopback, and recording
#   encryption (the sealed format vs. raw AES-256-GCM over the same bytes).
#
#   e2e/bench.sh                      # N = 10,100,1000 tenants; 1,10,100 subscribers
#   OPERATOR_NS=10,100 MEDIA_NS=1,10 STEADY_SECONDS=30 e2e/bench.sh
#   BENCH_DEBOUNCE_MS=0,500 OPERATOR_NS=100 e2e/bench.sh   # each N per reconcile debounce
#
# Benchmarks print figures; they never pass or fail on them. Compare runs from one machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET_DIR/bench"
mkdir -p "$OUT"
step() { printf '\n==> %s\n' "$*" >&2; }

step "release build of the operator and the benchmarks"
# One package set for every cargo call below, so features unify once and nothing rebuilds.
PKGS=(-p sanctum-e2e -p sanctum-media-node)
cargo build --release --locked -p sanctum-operator
cargo bench --locked "${PKGS[@]}" --no-run

CLUSTER="sanctum-bench-$$"
export SANCTUM_MOTO_PORT="${SANCTUM_MOTO_PORT:-4568}"
cleanup() {
  local status=$?
  if [ "$status" -ne 0 ] && [ -z "${KUBECONFIG_WAS_SET:-}" ]; then
    # What the control plane said last, before it is deleted.
    for component in kube-apiserver etcd; do
      echo "--- last lines of $component" >&2
      kwokctl logs "$component" --name "$CLUSTER" 2>/dev/null | tail -n 15 >&2 || true
    done
  fi
  "$ROOT/e2e/controlplane/cluster.sh" down "$CLUSTER" >/dev/null 2>&1 || true
}
trap cleanup EXIT
if [ -n "${KUBECONFIG:-}" ]; then
  KUBECONFIG_WAS_SET=1
  eval "$("$ROOT/e2e/controlplane/cluster.sh" moto "$CLUSTER")"
else
  eval "$("$ROOT/e2e/controlplane/cluster.sh" up "$CLUSTER")"
  # Room for 1000 tenants: more fake nodes and a second Service range
  # (networking.k8s.io/v1 ServiceCIDR) beside the default /24. Every run's tenants and
  # baseline objects stay until the end, so N = 10 + 100 + 1000 twice: about 2,200 media
  # pods requesting 0.5 CPU each; a kwok node offers 32 CPUs and 110 pods.
  kwokctl scale node --name "$CLUSTER" --replicas 40 >&2
  kubectl apply --server-side -f - >&2 <<'YAML'
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata:
  name: sanctum-bench
spec:
  cidrs: ["10.96.0.0/16"]
YAML
fi

step "operator convergence"
cargo bench --locked "${PKGS[@]}" --bench convergence -- \
  "${OPERATOR_NS:-10,100,1000}" "${STEADY_SECONDS:-60}" | tee "$OUT/operator.md"

step "media-node forwarding"
cargo bench --locked "${PKGS[@]}" --bench forwarding -- \
  "${MEDIA_NS:-1,10,100}" "${MEDIA_SECONDS:-10}" | tee "$OUT/media.md"

step "recording encryption"
cargo bench --locked "${PKGS[@]}" --bench sealing -- \
  "${SEAL_MIB:-256}" "${SEAL_ROUNDS:-7}" | tee "$OUT/recording.md"

{
  echo "# Sanctum benchmarks"
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); $(rustc --version)."
  echo
  echo "## Operator convergence"
  echo
  cat "$OUT/operator.md"
  echo
  echo "## Media-node forwarding"
  echo
  cat "$OUT/media.md"
  echo
  echo "## Recording encryption"
  echo
  cat "$OUT/recording.md"
} > "$OUT/report.md"
step "wrote $OUT/report.md, $OUT/operator-convergence.json, $OUT/media-forwarding.json, $OUT/recording-encryption.json"
