#!/usr/bin/env bash
# One real node of the local cluster, beside kwok's simulated ones: kubelet and kube-proxy
# from the pinned k8s.io/kubernetes module, containerd with Debian's runc, Debian's CNI
# plugins (bridge, host-local, loopback, portmap), kube-router in firewall-only mode as
# the NetworkPolicy enforcer, and CoreDNS as a pod. Called by cluster.sh; the binaries are
# built by `cluster.sh build`.
#
# The node lives in its own network namespace (like a kind node container): its iptables
# rules, bridge and pods stay out of the machine's own network. A veth pair joins it to
# the machine: the machine end (HOST_IP, 10.250.<slot>.1) is where the node reaches the
# API server and the AWS emulator (OUTSIDE_IP, .3, is a second machine address for
# egress tests); the node end (NODE_IP, 10.250.<slot>.2) is the node's
# InternalIP; pod addresses (POD_CIDR, 10.244.<slot>.0/24) are routed to it, so programs
# on the machine (Chromium) reach pods as clients outside the cluster would.
#
#   node.sh net NAME       make the namespace and veth (before the API server starts)
#   node.sh up NAME        start the node and CoreDNS, import images; wait until Ready
#   node.sh images NAME    import every OCI archive of the image cache into the node
#   node.sh down NAME      stop everything of the node and remove its namespace
#   node.sh env NAME       print the node's addresses
#
# Processes run in the namespace's network only (nsenter --net), in the machine's mount
# namespace, so kubelet, containerd and runc see the same mounts.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION=${K8S_VERSION:-v1.36.3}
CACHE="${SANCTUM_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sanctum-e2e}"
KCACHE="$CACHE/k8s-${K8S_VERSION}"
BIN="$KCACHE/bin"
IMAGES="$CACHE/images"
NAME="${2:-sanctum}"
KWOK_WORKDIR="${KWOK_WORKDIR:-$KCACHE/kwok}"
CLUSTER_DIR="$KWOK_WORKDIR/clusters/$NAME"
# Node state lives beside the cluster (removed with it); sockets need short paths.
STATE="$KCACHE/nodes/$NAME"
RUN="/run/sanctum-e2e/$NAME"
NODE_NAME=sanctum-node
SERVICE_CIDR=10.96.0.0/16
CLUSTER_DNS=10.96.0.10
# Label and taint of the real node: only pods that ask for it land there.
NODE_LABEL=sanctum.dev/real-node
COREDNS_IMAGE=localhost/sanctum-e2e/coredns:1.15.0
PAUSE_IMAGE=registry.k8s.io/pause:3.10.1

log() { printf '[node] %s\n' "$*" >&2; }

# The slot numbers this cluster's addresses; chosen once, at `net`, among 1..16.
slot() {
  if [ -s "$STATE/slot" ]; then cat "$STATE/slot"; return; fi
  local n
  for n in $(seq 1 16); do
    if ! ip netns list 2>/dev/null | grep -qw "sanctum-n$n"; then
      mkdir -p "$STATE"; echo "$n" >"$STATE/slot"; echo "$n"; return
    fi
  done
  log "no free node slot (16 real nodes already exist)"; exit 1
}

vars() {
  SLOT="$(slot)"
  NETNS="sanctum-n$SLOT"
  VETH="snode$SLOT"
  HOST_IP="10.250.$SLOT.1"
  NODE_IP="10.250.$SLOT.2"
  # A second machine address that no test tenant's egressCIDRs name: a listener there
  # shows whether egress outside the allowed CIDRs is refused.
  OUTSIDE_IP="10.250.$SLOT.3"
  POD_CIDR="10.244.$SLOT.0/24"
  CGROUP="sanctum-e2e-$NAME"
  SOCK="$RUN/containerd.sock"
}

in_node() { nsenter --net="/var/run/netns/$NETNS" "$@"; }

net() {
  vars
  if ip netns list | grep -qw "$NETNS"; then return; fi
  log "network namespace $NETNS: node $NODE_IP, machine $HOST_IP, pods $POD_CIDR"
  ip netns add "$NETNS"
  ip link add "$VETH" type veth peer name eth0 netns "$NETNS"
  ip addr add "$HOST_IP/24" dev "$VETH"
  ip addr add "$OUTSIDE_IP/24" dev "$VETH"
  ip link set "$VETH" up
  ip -n "$NETNS" addr add "$NODE_IP/24" dev eth0
  ip -n "$NETNS" link set eth0 up
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" route add default via "$HOST_IP"
  ip route replace "$POD_CIDR" via "$NODE_IP" dev "$VETH"
  # A node forwards between its pods and the outside, and bridged pod traffic goes
  # through iptables (kube-proxy, kube-router): per-namespace settings.
  in_node sysctl -q -w net.ipv4.ip_forward=1
  in_node sysctl -q -w net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
}

# Client certificates for the node's components, signed by the cluster CA.
certs() {
  local pki="$STATE/pki"
  mkdir -p "$pki"
  [ -s "$pki/kubelet.crt" ] && return
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' >"$pki/client.cnf"
  local who subject port
  port="$(sed -n 's#.*server: https://[^:]*:\([0-9]*\).*#\1#p' "$KCACHE/$NAME.kubeconfig" | head -1)"
  for who in kubelet proxy router; do
    case $who in
      kubelet) subject="/O=system:nodes/CN=system:node:$NODE_NAME" ;;
      proxy) subject="/CN=system:kube-proxy" ;;
      router) subject="/CN=system:kube-router" ;;
    esac
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subject" \
      -keyout "$pki/$who.key" -out "$pki/$who.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$who.csr" -CA "$CLUSTER_DIR/pki/ca.crt" -CAkey "$CLUSTER_DIR/pki/ca.key" \
      -CAcreateserial -days 3650 -extfile "$pki/client.cnf" -out "$pki/$who.crt" 2>/dev/null
    cat >"$STATE/$who.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://$HOST_IP:$port", certificate-authority: "$CLUSTER_DIR/pki/ca.crt"}
users:
- name: $who
  user: {client-certificate: "$pki/$who.crt", client-key: "$pki/$who.key"}
contexts:
- name: local
  context: {cluster: local, user: $who}
current-context: local
EOF
  done
}

configs() {
  mkdir -p "$STATE/cni/net.d" "$STATE/cni/ipam" "$STATE/pod-logs" "$RUN"
  cat >"$STATE/containerd.toml" <<EOF
version = 3
root = "$STATE/containerd"
state = "$RUN/containerd"
[grpc]
  address = "$SOCK"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"
[plugins.'io.containerd.cri.v1.runtime']
  # The machine withholds CAP_SYS_RESOURCE, so no process may lower its OOM score:
  # containers get no score below containerd's own instead of failing to start.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "$(command -v runc)"
      SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$STATE/cni/net.d"
EOF
  cat >"$STATE/cni/net.d/10-sanctum.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "sanctum", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$STATE/cni/ipam",
            "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
EOF
  cat >"$STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The machine has cgroup v1 (hybrid) and no systemd; kubelet 1.35+ refuses cgroup v1
# unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP
containerRuntimeEndpoint: unix://$SOCK
address: $NODE_IP
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$CLUSTER_DIR/pki/ca.crt"}
authorization: {mode: Webhook}
clusterDNS: [$CLUSTER_DNS]
clusterDomain: cluster.local
podLogsDir: "$STATE/pod-logs"
registerWithTaints:
- {key: $NODE_LABEL, value: "true", effect: NoSchedule}
failSwapOn: false
# Imported images cannot be pulled again: never collect them, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"}
EOF
  cat >"$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$STATE/proxy.kubeconfig"}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
nodePortAddresses: [primary]
metricsBindAddress: "$NODE_IP:10249"
healthzBindAddress: "$NODE_IP:10256"
conntrack: {maxPerCore: 0}
EOF
}

start() { # name command...
  local name=$1; shift
  local pidfile="$STATE/pids/$name.pid"
  mkdir -p "$STATE/pids" "$STATE/logs"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return; fi
  setsid nsenter --net="/var/run/netns/$NETNS" "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

kubectl_() { "$BIN/kubectl" --kubeconfig "$KCACHE/$NAME.kubeconfig" "$@"; }

wait_for() { # what seconds command...
  local what=$1 seconds=$2; shift 2
  local i
  for i in $(seq 1 $((seconds * 2))); do
    if "$@" >/dev/null 2>&1; then return; fi
    sleep 0.5
  done
  log "timed out after ${seconds}s waiting for $what"
  return 1
}

# The pause (pod sandbox) and CoreDNS images, built here like every other image.
node_images() {
  mkdir -p "$IMAGES" "$STATE/image-build"
  local store=(--root "$CACHE/buildah/root" --runroot "$CACHE/buildah/run" --storage-driver vfs)
  local ctx="$STATE/image-build"
  if [ ! -s "$IMAGES/pause-3.10.1.oci.tar" ]; then
    gcc -Os -static -DVERSION=v3.10.1 -o "$ctx/pause" \
      "$(cd "$HERE/k8s" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
    strip "$ctx/pause"
    buildah "${store[@]}" bud --quiet --isolation chroot -f "$HERE/node/pause.Dockerfile" -t "$PAUSE_IMAGE" "$ctx" >/dev/null
    buildah "${store[@]}" push --quiet "$PAUSE_IMAGE" "oci-archive:$IMAGES/pause-3.10.1.oci.tar:$PAUSE_IMAGE"
  fi
  if [ ! -s "$IMAGES/coredns-1.15.0.oci.tar" ] || [ "$BIN/coredns" -nt "$IMAGES/coredns-1.15.0.oci.tar" ]; then
    cp "$BIN/coredns" "$ctx/coredns"
    buildah "${store[@]}" bud --quiet --isolation chroot -f "$HERE/node/coredns.Dockerfile" -t "$COREDNS_IMAGE" "$ctx" >/dev/null
    buildah "${store[@]}" push --quiet "$COREDNS_IMAGE" "oci-archive:$IMAGES/coredns-1.15.0.oci.tar:$COREDNS_IMAGE"
  fi
}

# Imports every archive of the image cache that changed since it was last imported.
import_images() {
  vars
  local archive stamp
  mkdir -p "$STATE/imported"
  for archive in "$IMAGES"/*.oci.tar; do
    [ -e "$archive" ] || continue
    stamp="$STATE/imported/$(basename "$archive").stamp"
    if [ -f "$stamp" ] && [ "$stamp" -nt "$archive" ]; then continue; fi
    "$BIN/ctr" --address "$SOCK" -n k8s.io images import "$archive" 2>&1 \
      | grep -v DEPRECATION >&2 || true
    touch "$stamp"
    log "imported $(basename "$archive")"
  done
}

up() {
  net
  certs
  configs
  local c
  for c in cpu cpuacct cpuset memory devices freezer blkio pids systemd; do
    [ -d "/sys/fs/cgroup/$c" ] && mkdir -p "/sys/fs/cgroup/$c/$CGROUP"
  done
  [ -d /sys/fs/cgroup/unified ] && mkdir -p "/sys/fs/cgroup/unified/$CGROUP"
  start containerd "$BIN/containerd" --config "$STATE/containerd.toml"
  wait_for containerd 30 "$BIN/ctr" --address "$SOCK" version
  node_images
  import_images
  start kubelet "$BIN/kubelet" --config "$STATE/kubelet.yaml" --kubeconfig "$STATE/kubelet.kubeconfig" \
    --root-dir "$STATE/kubelet" --cert-dir "$STATE/kubelet/pki" --hostname-override "$NODE_NAME" \
    --node-ip "$NODE_IP" --node-labels "$NODE_LABEL=true"
  wait_for "node $NODE_NAME to register" 60 kubectl_ get node "$NODE_NAME"
  kubectl_ patch node "$NODE_NAME" --type merge \
    -p "{\"spec\":{\"podCIDR\":\"$POD_CIDR\",\"podCIDRs\":[\"$POD_CIDR\"]}}" >/dev/null 2>&1 || true
  start kube-proxy "$BIN/kube-proxy" --config "$STATE/kube-proxy.yaml"
  kubectl_ apply --server-side --force-conflicts --field-manager sanctum-e2e -f "$HERE/node/kube-router-rbac.yaml" >/dev/null
  start kube-router "$BIN/kube-router" --kubeconfig "$STATE/router.kubeconfig" \
    --hostname-override "$NODE_NAME" --run-firewall=true --run-router=false \
    --run-service-proxy=false --enable-cni=false --enable-pod-egress=false \
    --service-cluster-ip-range "$SERVICE_CIDR" --health-port 0
  kubectl_ wait --for=condition=Ready "node/$NODE_NAME" --timeout=120s >/dev/null
  sed "s#@COREDNS_IMAGE@#$COREDNS_IMAGE#; s#@CLUSTER_DNS@#$CLUSTER_DNS#" "$HERE/node/coredns.yaml" \
    | kubectl_ apply --server-side --force-conflicts --field-manager sanctum-e2e -f - >/dev/null
  kubectl_ -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null \
    || { log "CoreDNS did not become ready"; kubectl_ -n kube-system get pods -o wide >&2; exit 1; }
  log "node $NODE_NAME is Ready ($NODE_IP, pods $POD_CIDR); CoreDNS at $CLUSTER_DNS"
}

# Every process of the node: its daemons and whatever runs in its cgroups.
down() {
  [ -s "$STATE/slot" ] || { rm -rf "$STATE"; return; }
  vars
  local f p
  for f in kubelet kube-router kube-proxy; do
    [ -f "$STATE/pids/$f.pid" ] && kill "$(cat "$STATE/pids/$f.pid")" 2>/dev/null || true
  done
  # Containers first (kubelet is gone, so nothing restarts them), then shims, then containerd.
  find /sys/fs/cgroup/*/"$CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | while read -r p; do
    kill -9 "$p" 2>/dev/null || true
  done
  pkill -9 -f "containerd-shim-runc-v2 .*-address $SOCK" 2>/dev/null || true
  [ -f "$STATE/pids/containerd.pid" ] && kill "$(cat "$STATE/pids/containerd.pid")" 2>/dev/null || true
  sleep 1
  for f in "$STATE"/pids/*.pid; do
    [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  # Mounts kubelet and containerd left (secrets, overlay roots, pod network namespaces).
  awk -v a="$STATE" -v b="$RUN" '$2 ~ "^"a || $2 ~ "^"b {print $2}' /proc/mounts | sort -r \
    | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  # Empty cgroups, deepest first.
  find /sys/fs/cgroup/*/"$CGROUP" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  ip netns del "$NETNS" 2>/dev/null || true
  ip link del "$VETH" 2>/dev/null || true
  rm -rf "$RUN" "$STATE"
  log "node of $NAME is down"
}

env_() {
  vars
  echo "export SANCTUM_E2E_REAL_NODE=$NODE_NAME"
  echo "export SANCTUM_E2E_NODE_IP=$NODE_IP"
  echo "export SANCTUM_E2E_HOST_IP=$HOST_IP"
  echo "export SANCTUM_E2E_OUTSIDE_IP=$OUTSIDE_IP"
  echo "export SANCTUM_E2E_POD_CIDR=$POD_CIDR"
  echo "export SANCTUM_E2E_NODE_NETNS=$NETNS"
}

case "${1:-}" in
  net) net ;;
  up) up ;;
  images) import_images ;;
  down) down ;;
  env) env_ ;;
  host-ip) vars; echo "$HOST_IP" ;;
  *) echo "usage: $0 net|up|images|down|env NAME" >&2; exit 2 ;;
esac
