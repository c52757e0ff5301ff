#!/usr/bin/env bash
# The main job, on this machine: build the images, start the local control plane with its
# real node and the AWS emulator, install the operator from its chart and image, apply the
# example tenant and watch it converge, with its media nodes really running.
#
#   e2e/demo.sh        build what is missing, start (or reuse) everything, show the tenant
#   e2e/demo.sh down   stop the control plane, the real node and the emulator
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLUSTER=sanctum
NAMESPACE=sanctum-system
STATE="${XDG_CACHE_HOME:-$HOME/.cache}/sanctum-e2e/demo"
mkdir -p "$STATE"
say() { printf '\n==> %s\n' "$*"; }

if [ "${1:-up}" = down ]; then
  e2e/controlplane/cluster.sh down "$CLUSTER"
  exit 0
fi

# The Go tools compile in the background while Rust compiles the images: each fills the
# other's idle phases on a small machine (the first run only; later runs find both built).
say "control plane, real node and AWS emulator tools build in the background (the first run compiles Kubernetes, containerd, kube-router and CoreDNS from their Go modules; log $STATE/build.log)"
setsid e2e/controlplane/cluster.sh build >"$STATE/build.log" 2>&1 </dev/null &
TOOLS=$!
trap 'kill -- "-$TOOLS" 2>/dev/null || true' EXIT

say "images of the operator and the media node (e2e/images.sh; the first run compiles the workspace for the musl target)"
e2e/images.sh

say "waiting for the tools"
if ! wait "$TOOLS"; then
  echo "building the cluster's tools failed:" >&2; tail -40 "$STATE/build.log" >&2; exit 1
fi
trap - EXIT
grep -E '^\[cluster\] (built|installing)' "$STATE/build.log" || true

say "control plane, real node and AWS emulator"
eval "$(e2e/controlplane/cluster.sh up "$CLUSTER")"

say "installing the operator with its chart into $NAMESPACE"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# The emulator's credentials and CA, where a platform team would give its own.
kubectl -n "$NAMESPACE" create secret generic aws-credentials --dry-run=client -o yaml \
  --from-literal=credentials="$(printf '[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n')" \
  | kubectl apply -f - >/dev/null
kubectl -n "$NAMESPACE" create configmap trust-bundle --dry-run=client -o yaml \
  --from-file=ca-certificates.crt="$SSL_CERT_FILE" | kubectl apply -f - >/dev/null
cat >"$STATE/values.yaml" <<EOF
replicas: 1
podDisruptionBudget: {enabled: false}
keyProviders: [local]
aws:
  region: us-east-1
  endpoint: "$SANCTUM_AWS_ENDPOINT"
  s3PathStyle: true
  credentialsSecret: aws-credentials
  trustBundle: {configMap: trust-bundle, key: ca-certificates.crt}
# The real node is tainted so that only pods meant to run for real land on it.
nodeSelector: {sanctum.dev/real-node: "true"}
tolerations: [{key: sanctum.dev/real-node, operator: Exists, effect: NoSchedule}]
EOF
helm upgrade --install sanctum charts/sanctum --namespace "$NAMESPACE" --take-ownership \
  -f "$STATE/values.yaml" --wait --timeout 180s
kubectl -n "$NAMESPACE" get pods -o wide

say "applying docs/examples/videotenant.yaml, its regions placed on the real node"
kubectl apply --dry-run=client -o json -f docs/examples/videotenant.yaml | python3 -c '
import json, sys
tenant = json.load(sys.stdin)
for region in tenant["spec"]["media"]["regions"]:
    region["nodeSelector"] = {"sanctum.dev/real-node": "true"}
    region["tolerations"] = [{"key": "sanctum.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}]
# Two CPUs for everything: small requests per media node.
tenant["spec"]["media"]["resources"] = {"requests": {"cpu": "100m", "memory": "64Mi"},
                                        "limits": {"cpu": "1", "memory": "256Mi"}}
json.dump(tenant, sys.stdout)
' >"$STATE/videotenant.json"
kubectl apply -f "$STATE/videotenant.json"
TENANT_NS=vt-clinic-a
for _ in $(seq 1 60); do kubectl get namespace "$TENANT_NS" >/dev/null 2>&1 && break; sleep 1; done
if ! kubectl -n "$TENANT_NS" get secret media-node-tls >/dev/null 2>&1; then
  # What cert-manager would issue: the media nodes' signaling certificate.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=clinic-a media" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$STATE/tls.key" -out "$STATE/tls.crt" 2>/dev/null
  kubectl -n "$TENANT_NS" create secret tls media-node-tls --cert "$STATE/tls.crt" --key "$STATE/tls.key" >/dev/null
fi

say "waiting for the tenant to converge (kubectl get vt)"
last=""
for _ in $(seq 1 240); do
  now="$(kubectl get vt clinic-a --no-headers -o custom-columns=R:.status.conditions[0].status,S:.status.conditions[0].reason,M:.status.mediaNodes 2>/dev/null || true)"
  if [ "$now" != "$last" ]; then kubectl get vt clinic-a; last="$now"; fi
  ready="$(kubectl get vt clinic-a -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)"
  if [ "$ready" = True ]; then break; fi
  sleep 1
done

say "conditions"
kubectl get vt clinic-a -o jsonpath='{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}' | column -t -s $'\t'

say "what the tenant owns (media pods run on $SANCTUM_E2E_REAL_NODE)"
kubectl get deploy,svc,pdb,hpa,netpol -n "$TENANT_NS"
kubectl get pods -n "$TENANT_NS" -o wide

POD="$(kubectl -n "$TENANT_NS" get pods -l app.kubernetes.io/component=media-node,sanctum.dev/region=us-east -o jsonpath='{.items[0].metadata.name}')"
MINT="target/image/$(uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')/sanctum-media-node"
kubectl -n "$TENANT_NS" get secret join-token-signing-key -o jsonpath='{.data.private\.pem}' | base64 -d >"$STATE/private.pem"
chmod 600 "$STATE/private.pem"
HOST_TOKEN="$("$MINT" mint-token --key "$STATE/private.pem" --tenant clinic-a --room visit-1 --user clinician-1 --role host --ttl-seconds 600)"
PATIENT_TOKEN="$("$MINT" mint-token --key "$STATE/private.pem" --tenant clinic-a --room visit-1 --user patient-1 --role participant --ttl-seconds 600)"
rm -f "$STATE/private.pem"
cat <<MSG

The cluster keeps running. To look around:
  export KUBECONFIG=$KUBECONFIG PATH=$(dirname "$SANCTUM_E2E_KUBECTL"):\$PATH
  kubectl get vt

To hold a visit in a browser on this machine (signaling through a port-forward, as an
ingress would carry it; media goes straight to the pod's address, which this machine routes):
  kubectl -n $TENANT_NS port-forward pod/$POD 8443:8443
  clinician: https://127.0.0.1:8443/visit/#token=$HOST_TOKEN
  patient:   https://127.0.0.1:8443/visit/#token=$PATIENT_TOKEN
(the certificate is the demo's self-signed one; the tokens last 10 minutes, the longest a node accepts)

Stop everything with: e2e/demo.sh down
MSG
