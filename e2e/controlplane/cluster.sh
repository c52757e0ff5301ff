#!/usr/bin/env bash
# Local Kubernetes control plane for e2e tests and the demo, built from real parts:
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from the
# pinned k8s.io/kubernetes release, etcd from its server module, and kwok's fake
# nodes, all compiled from the Go module proxy and run by kwokctl's binary runtime
# on loopback. Also runs moto (S3 + KMS emulator) from PyPI in a virtualenv, and one real
# node (node.sh: kubelet, kube-proxy, containerd, CNI, kube-router, CoreDNS) beside the
# simulated ones, for the pods that must really run (SANCTUM_E2E_REAL_NODE=false: none).
#
#   cluster.sh build        compile what the cluster and the demo need into the cache
#                           (idempotent): control plane, real node, helm, moto
#   cluster.sh build-tools  compile what only the tests need: kstatus, kubeconform,
#                           helm-docs, promtool, checkov
#   cluster.sh up [NAME]    build if needed, start cluster + emulator (+ real node), print env
#   cluster.sh down [NAME]  stop everything, leave no process behind
#   cluster.sh env [NAME]   print KUBECONFIG / AWS endpoint exports
#   cluster.sh moto [NAME]  start only the AWS emulator (for an existing cluster)
set -euo pipefail

K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
MOTO_VERSION=5.2.5
CHECKOV_VERSION=3.3.30
CONTAINERD_VERSION=v2.2.9
KUBE_ROUTER_VERSION=v2.1.0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${SANCTUM_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sanctum-e2e}/k8s-${K8S_VERSION}"
BIN="$CACHE/bin"
NAME="${2:-sanctum}"
MOTO_PORT="${SANCTUM_MOTO_PORT:-4566}"
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
export KWOK_WORKDIR="${KWOK_WORKDIR:-$CACHE/kwok}"

log() { printf '[cluster] %s\n' "$*" >&2; }

# The real node runs unless SANCTUM_E2E_REAL_NODE=false (benchmarks need only kwok).
real_node() { [ "${SANCTUM_E2E_REAL_NODE:-true}" != false ]; }

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
  build_one tools/helm helm helm.sh/helm/v3/cmd/helm
  if real_node; then
    build_one k8s kubelet k8s.io/kubernetes/cmd/kubelet "$kv"
    build_one k8s kube-proxy k8s.io/kubernetes/cmd/kube-proxy "$kv"
    local cv="-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
    CGO_ENABLED=0 build_one containerd containerd github.com/containerd/containerd/v2/cmd/containerd "$cv"
    CGO_ENABLED=0 build_one containerd containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 "$cv"
    CGO_ENABLED=0 build_one containerd ctr github.com/containerd/containerd/v2/cmd/ctr "$cv"
    build_one kube-router kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
      "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
    CGO_ENABLED=0 build_one coredns coredns github.com/coredns/coredns
  fi
  if [ ! -x "$CACHE/moto/bin/moto_server" ]; then
    log "installing moto[server]==$MOTO_VERSION into a virtualenv"
    python3 -m venv "$CACHE/moto"
    "$CACHE/moto/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
}

# Tools only the test suite runs (chart checks, GitOps status).
build_tools() {
  mkdir -p "$BIN"
  build_one kstatus kstatus .
  build_one tools/kubeconform kubeconform github.com/yannh/kubeconform/cmd/kubeconform
  build_one tools/helm-docs helm-docs github.com/norwoodj/helm-docs/cmd/helm-docs
  # promtool tests the chart's alert rules; without the service-discovery plugins it
  # does not need (tag remove_all_sd), it compiles in a fraction of the time.
  GOFLAGS="$GOFLAGS -tags=remove_all_sd" build_one tools/promtool promtool github.com/prometheus/prometheus/cmd/promtool
  if [ ! -x "$CACHE/checkov/bin/checkov" ]; then
    log "installing checkov==$CHECKOV_VERSION into a virtualenv"
    python3 -m venv "$CACHE/checkov"
    "$CACHE/checkov/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
    ln -sf "$CACHE/checkov/bin/checkov" "$BIN/checkov"
  fi
}

CLUSTER_DIR="$KWOK_WORKDIR/clusters/$NAME"
KUBECONFIG_PATH="$CACHE/$NAME.kubeconfig"
MOTO_PID="$CACHE/$NAME.moto.pid"

MOTO_TLS="$CACHE/moto-tls"
NODE="$HERE/node.sh"

# With a real node, moto listens where pods reach the machine, on 443 as AWS does (tenant
# egress policies allow TLS on 443 only); without one, on loopback.
moto_addr() {
  if real_node && [ -s "$CACHE/nodes/$NAME/slot" ]; then
    echo "$("$NODE" host-ip "$NAME") 443"
  else
    echo "127.0.0.1 $MOTO_PORT"
  fi
}

# moto serves HTTPS with a certificate of a CA made here, because tenant buckets deny
# every request that is not over TLS (aws:SecureTransport), as they would on AWS.
# SSL_CERT_FILE is the system bundle plus that CA, so nothing else loses its roots.
moto_certificates() {
  if [ -s "$MOTO_TLS/bundle.pem" ] && [ -s "$MOTO_TLS/server.pem" ] && grep -q 10.250.16.1 "$MOTO_TLS/ext.cnf" 2>/dev/null; then return; fi
  mkdir -p "$MOTO_TLS"
  log "making a local CA and certificate for moto (127.0.0.1, localhost, the real nodes' machine addresses)"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=sanctum e2e local CA" -keyout "$MOTO_TLS/ca.key" -out "$MOTO_TLS/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$MOTO_TLS/server.key" -out "$MOTO_TLS/server.csr" 2>/dev/null
  local sans="IP:127.0.0.1,DNS:localhost" n
  for n in $(seq 1 16); do sans="$sans,IP:10.250.$n.1"; done
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$sans" >"$MOTO_TLS/ext.cnf"
  openssl x509 -req -in "$MOTO_TLS/server.csr" -CA "$MOTO_TLS/ca.pem" -CAkey "$MOTO_TLS/ca.key" \
    -CAcreateserial -days 3650 -extfile "$MOTO_TLS/ext.cnf" -out "$MOTO_TLS/server.pem" 2>/dev/null
  cat /etc/ssl/certs/ca-certificates.crt "$MOTO_TLS/ca.pem" >"$MOTO_TLS/bundle.pem"
}

print_aws_env() {
  # moto accepts any credentials; these never reach AWS.
  local host port
  read -r host port <<<"$(moto_addr)"
  if [ "$port" = 443 ]; then echo "export SANCTUM_AWS_ENDPOINT=https://$host"; else echo "export SANCTUM_AWS_ENDPOINT=https://$host:$port"; fi
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
  if real_node && [ -s "$CACHE/nodes/$NAME/slot" ]; then "$NODE" env "$NAME"; fi
  print_aws_env
}

# Cluster settings kwokctl applies at creation. kwok manages only the nodes it made
# (annotated kwok.x-k8s.io/node=fake), never the real node. With a real node, the API
# server advertises the machine end of the node's veth (the `kubernetes` Service's
# endpoint), its certificate names that address and the Service IP, Services get
# 10.96.0.0/16, and it authenticates to kubelets (logs, exec, port-forward) with the
# cluster's admin certificate.
kwokctl_settings() {
  echo "apiVersion: config.kwok.x-k8s.io/v1alpha1"
  echo "kind: KwokctlConfiguration"
  local host=""
  if real_node; then
    host="$("$NODE" host-ip "$NAME")"
    echo "options:"
    echo "  kubeApiserverCertSANs: [\"10.96.0.1\", \"$host\"]"
  fi
  echo "componentsPatches:"
  echo "- name: kwok-controller"
  echo "  extraArgs:"
  echo "  - {key: manage-all-nodes, value: \"false\"}"
  echo "  - {key: manage-nodes-with-annotation-selector, value: \"kwok.x-k8s.io/node=fake\"}"
  if real_node; then
    echo "- name: kube-apiserver"
    echo "  extraArgs:"
    echo "  - {key: advertise-address, value: \"$host\"}"
    echo "  - {key: service-cluster-ip-range, value: \"10.96.0.0/16\"}"
    echo "  - {key: kubelet-client-certificate, value: \"$CLUSTER_DIR/pki/admin.crt\"}"
    echo "  - {key: kubelet-client-key, value: \"$CLUSTER_DIR/pki/admin.key\"}"
    echo "  - {key: kubelet-preferred-address-types, value: \"InternalIP\"}"
  fi
}

# kwok's default node and pod stages, except that a Job's pod annotated
# e2e.sanctum.dev/run-on-host is not completed by kwok: a test runs its container as a
# local process and writes the pod's real outcome (e2e/tests/backup_schedule.rs).
kwok_stages() {
  local src out="$CACHE/kwok-$NAME.yaml"
  src="$(cd "$HERE/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
  {
    kwokctl_settings; echo "---"
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
  if real_node; then "$NODE" net "$NAME"; fi
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
  if real_node; then "$NODE" up "$NAME"; fi
  log "cluster $NAME is up"
  print_env
}

start_moto() {
  if [ -f "$MOTO_PID" ] && kill -0 "$(cat "$MOTO_PID")" 2>/dev/null; then return; fi
  moto_certificates
  local host port
  read -r host port <<<"$(moto_addr)"
  log "starting moto on https://$host:$port"
  # setsid: moto outlives this script; `down` stops it by pid.
  # moto_server.py: moto with bucket policies that see aws:SecureTransport (see its docstring).
  setsid "$CACHE/moto/bin/python3" "$HERE/moto_server.py" -H "$host" -p "$port" \
    -c "$MOTO_TLS/server.pem" -k "$MOTO_TLS/server.key" >"$CACHE/$NAME.moto.log" 2>&1 < /dev/null &
  echo $! >"$MOTO_PID"
  for _ in $(seq 1 100); do
    if curl -sf --cacert "$MOTO_TLS/ca.pem" "https://$host:$port/moto-api/" >/dev/null 2>&1; then return; fi
    sleep 0.1
  done
  log "moto did not start; its log:"; cat "$CACHE/$NAME.moto.log" >&2; exit 1
}

down() {
  export PATH="$BIN:$PATH"
  # The node's mounts and processes go before kwokctl removes the cluster's directory.
  "$NODE" down "$NAME" || true
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
  build-tools) build_tools ;;
  images) "$NODE" images "$NAME" ;;
  up) up ;;
  moto) # only the AWS emulator (plus the built tools), for e2e runs against an existing cluster
    build
    build_tools
    export SANCTUM_E2E_REAL_NODE=false
    start_moto; print_aws_env
    echo "export PATH=$BIN:\$PATH"
    echo "export SANCTUM_E2E_KSTATUS=$BIN/kstatus" ;;
  down) down ;;
  env) print_env ;;
  *) echo "usage: $0 build|build-tools|up|down|env|moto|images [NAME]" >&2; exit 2 ;;
esac
