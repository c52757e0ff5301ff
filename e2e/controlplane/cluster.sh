#!/usr/bin/env bash
# Local Kubernetes control plane for e2e tests and the demo, built from real parts:
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from the
# pinned k8s.io/kubernetes release, etcd from its server module, and kwok's fake
# nodes, all compiled from the Go module proxy and run by kwokctl's binary runtime
# on loopback. Also runs moto (S3 + KMS emulator) from PyPI in a virtualenv.
#
#   cluster.sh build        compile everything into the cache (idempotent), including
#                           the chart tools (helm, kubeconform, helm-docs, checkov) and kstatus
#   cluster.sh up [NAME]    build if needed, start cluster + emulator, print env
#   cluster.sh down [NAME]  stop everything, leave no process behind
#   cluster.sh env [NAME]   print KUBECONFIG / AWS endpoint exports
#   cluster.sh moto [NAME]  start only the AWS emulator (for an existing cluster)
set -euo pipefail

K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
MOTO_VERSION=5.2.5
CHECKOV_VERSION=3.3.30
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${SANCTUM_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sanctum-e2e}/k8s-${K8S_VERSION}"
BIN="$CACHE/bin"
NAME="${2:-sanctum}"
MOTO_PORT="${SANCTUM_MOTO_PORT:-4566}"
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
export KWOK_WORKDIR="${KWOK_WORKDIR:-$CACHE/kwok}"

log() { printf '[cluster] %s\n' "$*" >&2; }

build_one() { # module-dir output package [ldflags]
  local dir=$1 out=$2 pkg=$3 ldflags=${4:-}
  # Rebuilt when the module's sources, the package or the flags change.
  local stamp
  stamp="$({
    cat "$HERE/$dir/go.mod" "$HERE/$dir/go.sum"
    if compgen -G "$HERE/$dir/*.go" >/dev/null; then cat "$HERE/$dir"/*.go; fi
    echo "$pkg $ldflags"
  } | sha256sum | cut -c1-16)"
  if [ -x "$BIN/$out" ] && [ "$(cat "$BIN/.$out.stamp" 2>/dev/null)" = "$stamp" ]; then return; fi
  log "building $out (first run only; this takes several minutes)"
  local start=$SECONDS
  (cd "$HERE/$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$BIN/$out.tmp" "$pkg") &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 5
    if kill -0 "$pid" 2>/dev/null && [ $(((SECONDS - start) % 30)) -lt 5 ]; then
      log "  still building $out ($((SECONDS - start))s)"
    fi
  done
  wait "$pid" || { log "building $out failed"; exit 1; }
  mv "$BIN/$out.tmp" "$BIN/$out"
  echo "$stamp" > "$BIN/.$out.stamp"
  log "built $out in $((SECONDS - start))s"
}

build() {
  command -v go >/dev/null || { log "go is required (https://go.dev)"; exit 1; }
  mkdir -p "$BIN"
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local kv="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
    -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
    -X k8s.io/component-base/version.gitTreeState=clean \
    -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
    -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  build_one etcd etcd . "-X go.etcd.io/etcd/api/v3/version.Version=${ETCD_VERSION#v}"
  build_one kwok kwok sigs.k8s.io/kwok/cmd/kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
  build_one kwok kwokctl sigs.k8s.io/kwok/cmd/kwokctl "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
  build_one k8s kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kv"
  build_one k8s kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$kv"
  build_one k8s kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$kv"
  build_one k8s kubectl k8s.io/kubernetes/cmd/kubectl "$kv"
  build_one kstatus kstatus .
  build_one tools/helm helm helm.sh/helm/v3/cmd/helm
  build_one tools/kubeconform kubeconform github.com/yannh/kubeconform/cmd/kubeconform
  build_one tools/helm-docs helm-docs github.com/norwoodj/helm-docs/cmd/helm-docs
  if [ ! -x "$CACHE/checkov/bin/checkov" ]; then
    log "installing checkov==$CHECKOV_VERSION into a virtualenv"
    python3 -m venv "$CACHE/checkov"
    "$CACHE/checkov/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
    ln -sf "$CACHE/checkov/bin/checkov" "$BIN/checkov"
  fi
  if [ ! -x "$CACHE/moto/bin/moto_server" ]; then
    log "installing moto[server]==$MOTO_VERSION into a virtualenv"
    python3 -m venv "$CACHE/moto"
    "$CACHE/moto/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
}

CLUSTER_DIR="$KWOK_WORKDIR/clusters/$NAME"
KUBECONFIG_PATH="$CACHE/$NAME.kubeconfig"
MOTO_PID="$CACHE/$NAME.moto.pid"

MOTO_TLS="$CACHE/moto-tls"

# moto serves HTTPS with a certificate of a CA made here, because tenant buckets deny
# every request that is not over TLS (aws:SecureTransport), as they would on AWS.
# SSL_CERT_FILE is the system bundle plus that CA, so nothing else loses its roots.
moto_certificates() {
  if [ -s "$MOTO_TLS/bundle.pem" ] && [ -s "$MOTO_TLS/server.pem" ]; then return; fi
  mkdir -p "$MOTO_TLS"
  log "making a local CA and certificate for moto (127.0.0.1, localhost)"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=sanctum e2e local CA" -keyout "$MOTO_TLS/ca.key" -out "$MOTO_TLS/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$MOTO_TLS/server.key" -out "$MOTO_TLS/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$MOTO_TLS/ext.cnf"
  openssl x509 -req -in "$MOTO_TLS/server.csr" -CA "$MOTO_TLS/ca.pem" -CAkey "$MOTO_TLS/ca.key" \
    -CAcreateserial -days 3650 -extfile "$MOTO_TLS/ext.cnf" -out "$MOTO_TLS/server.pem" 2>/dev/null
  cat /etc/ssl/certs/ca-certificates.crt "$MOTO_TLS/ca.pem" >"$MOTO_TLS/bundle.pem"
}

print_aws_env() {
  # moto accepts any credentials; these never reach AWS.
  echo "export SANCTUM_AWS_ENDPOINT=https://127.0.0.1:$MOTO_PORT"
  echo "export SSL_CERT_FILE=$MOTO_TLS/bundle.pem"
  echo "export SANCTUM_E2E_MOTO_CA=$MOTO_TLS/ca.pem"
  echo "export SANCTUM_S3_PATH_STYLE=true"
  echo "export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing"
}

print_env() {
  echo "export KUBECONFIG=$KUBECONFIG_PATH"
  echo "export SANCTUM_E2E_AUDIT_LOG=$CLUSTER_DIR/logs/audit.log"
  echo "export SANCTUM_E2E_KUBECTL=$BIN/kubectl"
  echo "export SANCTUM_E2E_KSTATUS=$BIN/kstatus"
  echo "export KWOK_WORKDIR=$KWOK_WORKDIR"
  echo "export PATH=$BIN:\$PATH"
  print_aws_env
}

# kwok's default node and pod stages, except that a Job's pod annotated
# e2e.sanctum.dev/run-on-host is not completed by kwok: a test runs its container as a
# local process and writes the pod's real outcome (e2e/tests/backup_schedule.rs).
kwok_stages() {
  local src out="$CACHE/kwok-stages.yaml"
  src="$(cd "$HERE/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
  {
    cat "$src/node/fast/node-initialize.yaml"; echo "---"
    cat "$src/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml"; echo "---"
    cat "$src/pod/fast/pod-ready.yaml"; echo "---"
    awk '{ print }
      !done && /operator: .DoesNotExist./ {
        print "    - key: '"'"'.metadata.annotations[\"e2e.sanctum.dev/run-on-host\"]'"'"'"
        print "      operator: '"'"'DoesNotExist'"'"'"
        done = 1
      }' "$src/pod/fast/pod-complete.yaml"; echo "---"
    cat "$src/pod/fast/pod-delete.yaml"
  } > "$out"
  grep -q 'run-on-host' "$out" || { log "could not patch kwok's pod-complete stage"; exit 1; }
  echo "$out"
}

up() {
  build
  export PATH="$BIN:$PATH"
  if [ -f "$CLUSTER_DIR/kwok.yaml" ]; then
    log "cluster $NAME exists; starting it"
    kwokctl start cluster --name "$NAME" --wait 2m >&2
  else
    log "creating cluster $NAME (Kubernetes $K8S_VERSION, kwok $KWOK_VERSION)"
    local stages
    stages="$(kwok_stages)"
    kwokctl create cluster --name "$NAME" --runtime binary \
      --kube-apiserver-binary "$BIN/kube-apiserver" \
      --kube-controller-manager-binary "$BIN/kube-controller-manager" \
      --kube-scheduler-binary "$BIN/kube-scheduler" \
      --etcd-binary "$BIN/etcd" --kwok-controller-binary "$BIN/kwok" \
      --kube-audit-policy "$HERE/audit-policy.yaml" \
      --config "$stages" \
      --kubeconfig "$KUBECONFIG_PATH" --wait 2m >&2
    kwokctl scale node --name "$NAME" --replicas 3 >&2
  fi
  kubectl --kubeconfig "$KUBECONFIG_PATH" wait --for=condition=Ready node --all --timeout=60s >&2
  start_moto
  log "cluster $NAME is up"
  print_env
}

start_moto() {
  if [ -f "$MOTO_PID" ] && kill -0 "$(cat "$MOTO_PID")" 2>/dev/null; then return; fi
  moto_certificates
  log "starting moto on https://127.0.0.1:$MOTO_PORT"
  # setsid: moto outlives this script; `down` stops it by pid.
  # moto_server.py: moto with bucket policies that see aws:SecureTransport (see its docstring).
  setsid "$CACHE/moto/bin/python3" "$HERE/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT" \
    -c "$MOTO_TLS/server.pem" -k "$MOTO_TLS/server.key" >"$CACHE/$NAME.moto.log" 2>&1 < /dev/null &
  echo $! >"$MOTO_PID"
  for _ in $(seq 1 100); do
    if curl -sf --cacert "$MOTO_TLS/ca.pem" "https://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1; then return; fi
    sleep 0.1
  done
  log "moto did not start; its log:"; cat "$CACHE/$NAME.moto.log" >&2; exit 1
}

down() {
  export PATH="$BIN:$PATH"
  local pids=""
  if [ -d "$CLUSTER_DIR/pids" ]; then pids=$(cat "$CLUSTER_DIR"/pids/*.pid 2>/dev/null || true); fi
  if [ -x "$BIN/kwokctl" ] && [ -d "$CLUSTER_DIR" ]; then
    kwokctl delete cluster --name "$NAME" --kubeconfig "$KUBECONFIG_PATH" >&2 || true
  fi
  if [ -f "$MOTO_PID" ]; then pids="$pids $(cat "$MOTO_PID")"; kill "$(cat "$MOTO_PID")" 2>/dev/null || true; rm -f "$MOTO_PID"; fi
  # Wait for every process to exit; a straggler after 10 s is killed.
  for _ in $(seq 1 100); do
    local alive=""
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
  rm -f "$KUBECONFIG_PATH"
  log "cluster $NAME is down"
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  moto) # only the AWS emulator (plus the built tools), for e2e runs against an existing cluster
    build
    start_moto; print_aws_env
    echo "export PATH=$BIN:\$PATH"
    echo "export SANCTUM_E2E_KSTATUS=$BIN/kstatus" ;;
  down) down ;;
  env) print_env ;;
  *) echo "usage: $0 build|up|down|env [NAME]" >&2; exit 2 ;;
esac
