#!/usr/bin/env bash
# The main job, on this machine: start the local control plane and AWS emulator, build
# and run the operator, apply the example tenant and watch it converge.
#
#   e2e/demo.sh        start (or reuse) everything and show the tenant converging
#   e2e/demo.sh down   stop the operator, the control plane and the emulator
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLUSTER=sanctum
STATE="${XDG_CACHE_HOME:-$HOME/.cache}/sanctum-e2e/demo"
mkdir -p "$STATE"
say() { printf '\n==> %s\n' "$*"; }

stop_operator() {
  if [ -f "$STATE/operator.pid" ]; then
    kill "$(cat "$STATE/operator.pid")" 2>/dev/null || true
    rm -f "$STATE/operator.pid"
  fi
}

if [ "${1:-up}" = down ]; then
  stop_operator
  e2e/controlplane/cluster.sh down "$CLUSTER"
  exit 0
fi

say "control plane and AWS emulator (the first run compiles Kubernetes from its Go modules: about 10 minutes on 2 cores)"
eval "$(e2e/controlplane/cluster.sh up "$CLUSTER")"

say "building the operator"
cargo build -p sanctum-operator

say "installing the CRDs"
kubectl apply --server-side --force-conflicts --field-manager sanctum-install -f crds/

kubectl create namespace sanctum-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null

say "starting the operator (log: $STATE/operator.log)"
stop_operator
setsid target/debug/sanctum run --log-format text --http-addr 127.0.0.1:18080 >"$STATE/operator.log" 2>&1 </dev/null &
echo $! >"$STATE/operator.pid"

say "applying docs/examples/videotenant.yaml"
kubectl apply -f docs/examples/videotenant.yaml

say "waiting for the tenant to converge (kubectl get vt)"
last=""
for _ in $(seq 1 120); do
  now="$(kubectl get vt clinic-a --no-headers -o custom-columns=R:.status.conditions[0].status,S:.status.conditions[0].reason,M:.status.mediaNodes 2>/dev/null || true)"
  if [ "$now" != "$last" ]; then kubectl get vt clinic-a; last="$now"; fi
  ready="$(kubectl get vt clinic-a -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)"
  if [ "$ready" = True ]; then break; fi
  sleep 1
done

say "conditions"
kubectl get vt clinic-a -o jsonpath='{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}' | column -t -s $'\t'

say "what the tenant owns"
kubectl get deploy,svc,pdb,hpa,netpol,pods -n vt-clinic-a

cat <<MSG

The cluster keeps running. To look around:
  export KUBECONFIG=$KUBECONFIG PATH=$(dirname "$SANCTUM_E2E_KUBECTL"):\$PATH
  kubectl get vt
Stop everything with: e2e/demo.sh down
MSG
