#!/usr/bin/env bash
# Checks the Helm chart and the GitOps examples without a cluster:
#
#   1. the chart's CRDs and admission policy are byte-identical copies of crds/;
#   2. the Argo CD health checks pass their Lua tests, and docs/examples/argocd-application.yaml
#      carries exactly those scripts; the Argo CD and Flux examples keep their key settings;
#   3. README.md is exactly what helm-docs generates, and documents every value;
#   4. `helm lint --strict` passes with the default values and every ci/*-values.yaml,
#      values the chart must refuse are refused at render time, and the values the e2e
#      install uses (an S3-compatible endpoint, path-style addressing, a lease name) render;
#   5. `helm template` output passes `kubeconform -strict` against Kubernetes 1.33.0 schemas,
#      with JSON schemas generated from the CRDs for the custom kinds (and
#      docs/examples/videotenant.yaml passes them too);
#   6. no ClusterRole bound cluster-wide may create and read Secrets (a token for any
#      ServiceAccount), checked on every value set's output;
#   7. the security linter checkov (`--framework kubernetes`) reports no failed check in the
#      output of any value set. Checks that do not apply are skipped in the templates with
#      `checkov.io/skip<N>: <check>=<reason>` annotations (listed in the chart's README.md);
#      a skip without a reason fails this script.
#
# Tools come from PATH: helm, kubeconform, helm-docs, checkov, python3 with PyYAML, Lua 5.1
# (`lua5.1`, or `lua` when it is 5.1), curl, and go (to fetch schema sources from the Go
# module proxy). A missing tool is an error, never a skipped check.
#
# Kubernetes schemas: kubeconform's default location (GitHub) when a short probe reaches
# it; otherwise they are generated from the OpenAPI v3 documents in the k8s.io/kubernetes
# module of the same version. Force one with SANCTUM_K8S_SCHEMAS=default|module.
# The ServiceMonitor schema always comes from the prometheus-operator module's CRD.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CHART=charts/sanctum
RELEASE=sanctum
NAMESPACE=sanctum-system
KUBE_VERSION=1.33.0
PROMETHEUS_OPERATOR_VERSION=v0.85.0
SCHEMA_PROBE="https://raw.githubusercontent.com/yannh/kubernetes-json-schema/master/v${KUBE_VERSION}-standalone-strict/deployment-apps-v1.json"

step() { printf '\n==> %s\n' "$*" >&2; }
die() { echo "error: $*" >&2; exit 1; }
need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "'$tool' is required but not on PATH"
  done
}

need helm kubeconform helm-docs checkov promtool python3 curl
python3 -c 'import yaml' 2>/dev/null || die "python3 needs PyYAML (pip install pyyaml, or apt-get install python3-yaml)"
LUA=""
if command -v lua5.1 >/dev/null; then
  LUA=lua5.1
elif command -v lua >/dev/null && lua -v 2>&1 | grep -q '^Lua 5\.1'; then
  LUA=lua
fi
[ -n "$LUA" ] || die "Lua 5.1 is required (Argo CD's dialect): apt-get install lua5.1"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

step "CRD copies in $CHART are identical to crds/"
for f in videotenants.yaml recordings.yaml; do
  diff -u "crds/$f" "$CHART/crds/$f" || die "$CHART/crds/$f differs from crds/$f: copy it again (cp crds/$f $CHART/crds/)"
done
diff -u crds/recording-admission-policy.yaml "$CHART/templates/recording-admission-policy.yaml" ||
  die "$CHART/templates/recording-admission-policy.yaml differs from crds/: copy it again"
extra="$(find "$CHART/crds" -type f ! -name videotenants.yaml ! -name recordings.yaml)"
[ -z "$extra" ] || die "unexpected files in $CHART/crds: $extra"

step "Argo CD health checks (Lua 5.1)"
"$LUA" "$CHART/health/run_tests.lua"

step "GitOps examples carry the health checks and their key settings"
python3 - "$CHART" <<'PY'
import sys, yaml
chart = sys.argv[1]
def docs(path):
    return [d for d in yaml.safe_load_all(open(path)) if d]
argo = docs("docs/examples/argocd-application.yaml")
cms = [d for d in argo if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "argocd-cm"]
assert len(cms) == 1, "docs/examples/argocd-application.yaml needs one argocd-cm ConfigMap"
data = cms[0]["data"]
for kind, script in (("VideoTenant", "videotenant.lua"), ("Recording", "recording.lua")):
    key = "resource.customizations.health.sanctum.dev_" + kind
    want = open(f"{chart}/health/{script}").read()
    if data.get(key) != want:
        sys.exit(f"argocd-cm key {key} differs from {chart}/health/{script}: paste the script again")
apps = [d for d in argo if d["kind"] == "Application"]
assert len(apps) == 2, "expected an Application for the chart and one for the tenants"
for app in apps:
    options = app["spec"]["syncPolicy"].get("syncOptions", [])
    assert "ServerSideApply=true" in options, app["metadata"]["name"] + " must sync with ServerSideApply=true"
flux = docs("docs/examples/flux-kustomization.yaml")
kustomizations = [d for d in flux if d["kind"] == "Kustomization"]
assert kustomizations and all(k["spec"].get("wait") is True for k in kustomizations), "Flux Kustomizations must set wait: true"
assert any(d["kind"] == "HelmRelease" for d in flux), "the Flux example installs the chart with a HelmRelease"
print("ok")
PY

step "README.md is what helm-docs generates from README.md.gotmpl and values.yaml"
helm-docs --chart-search-root charts --dry-run 2>/dev/null | diff -u "$CHART/README.md" - ||
  die "$CHART/README.md is stale: run helm-docs --chart-search-root charts"

step "README.md documents every value"
python3 - "$CHART" <<'PY'
import sys, yaml
chart = sys.argv[1]
values = yaml.safe_load(open(f"{chart}/values.yaml"))
readme = open(f"{chart}/README.md").read()
# helm-docs lists leaves, and maps or lists whose `# --` comment sits on the parent key.
documented = {line.split("|")[1].strip() for line in readme.splitlines() if line.startswith("| ")}
def keys(node, prefix=""):
    for k, v in node.items():
        path = prefix + k
        if path in documented:
            yield path
        elif isinstance(v, dict) and v:
            yield from keys(v, path + ".")
        else:
            yield path
missing = [k for k in keys(values) if k not in documented]
if missing:
    sys.exit("README.md does not document: " + ", ".join(missing))
print("ok")
PY

VALUE_SETS=("")
for f in "$CHART"/ci/*-values.yaml; do VALUE_SETS+=("$f"); done

step "helm lint --strict"
for values in "${VALUE_SETS[@]}"; do
  helm lint --strict --kube-version "$KUBE_VERSION" "$CHART" ${values:+--values "$values"}
done

step "values the chart must refuse"
template() { helm template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$KUBE_VERSION" "$@"; }
template >/dev/null || die "the default values do not render"
refuse() {
  local why="$1"
  shift
  if template "$@" >"$WORK/refused.out" 2>&1; then
    die "helm template accepted $why ($*)"
  fi
  echo "refused: $why: $(grep -v -e '^\s*$' -e '^Use --debug' "$WORK/refused.out" | tail -n 1)"
}
refuse "an unknown value" --set unknownValue=1
refuse "a misspelled nested value" --set image.tags=1.0
refuse "two replicas without leader election" --set replicas=2 --set leaderElection.enabled=false
refuse "a PodDisruptionBudget that blocks every drain" --set replicas=2 --set podDisruptionBudget.minAvailable=2
refuse "a NetworkPolicy without API server and AWS CIDRs" --set networkPolicy.enabled=true
refuse "the latest tag" --set image.tag=latest
refuse "an unknown log format" --set logFormat=xml
refuse "no resource limits" --set resources.limits=null

step "values the e2e install uses render"
# e2e/tests/chart_install.rs installs with these (and --take-ownership of the admission
# policy the test harness applied from crds/).
template --set aws.endpoint=http://127.0.0.1:4566 --set aws.s3PathStyle=true \
  --set leaderElection.leaseName=x --set "keyProviders={aws,local}" >"$WORK/e2e-install.yaml" || die "the e2e install values do not render"
python3 - "$WORK/e2e-install.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
deployment = next(d for d in docs if d["kind"] == "Deployment")
env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
want = {"SANCTUM_AWS_ENDPOINT": "http://127.0.0.1:4566", "SANCTUM_S3_PATH_STYLE": "true",
        "SANCTUM_LEADER_ELECTION": "true", "SANCTUM_LEASE_NAME": "x"}
for name, value in want.items():
    assert env.get(name) == value, f"{name} is {env.get(name)!r}, not {value!r}"
role = next(d for d in docs if d["kind"] == "Role")
leases = [r for r in role["rules"] if "leases" in r["resources"]]
named = {v for r in leases if r.get("resourceNames") == ["x"] for v in r["verbs"]}
unnamed = {v for r in leases if not r.get("resourceNames") for v in r["verbs"]}
# The Lease is read, created when missing, and renewed by server-side apply (PATCH).
assert {"get", "patch"} <= named, f"the Role must grant get and patch on Lease x, not {sorted(named)}"
assert unnamed == {"create"}, f"only create may be granted on Leases of any name, not {sorted(unnamed)}"
print("ok")
PY

step "JSON schemas for kubeconform"
need go
CRD_SCHEMAS="$WORK/crd-schemas"
mkdir -p "$CRD_SCHEMAS"
module_dir() {
  # Downloads (or finds in the module cache) a Go module and prints its directory.
  (cd "$WORK" && go mod download -json "$1") |
    python3 -c 'import json, sys; d = json.load(sys.stdin); sys.exit(d["Error"]) if d.get("Error") else print(d["Dir"])'
}
PROM_DIR="$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")"
# Each CRD version's openAPIV3Schema becomes <kind>_<version>.json (kubeconform location
# {{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json), made strict like kubeconform's
# -strict Kubernetes schemas: unknown fields are refused unless the schema preserves them.
python3 - "$CRD_SCHEMAS" crds/videotenants.yaml crds/recordings.yaml \
  "$PROM_DIR/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
  "$PROM_DIR/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml" <<'PY'
import json, os, sys, yaml
out = sys.argv[1]
def strict(node):
    if isinstance(node, dict):
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for v in node.values():
            strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)
for path in sys.argv[2:]:
    for crd in yaml.safe_load_all(open(path)):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        kind = crd["spec"]["names"]["kind"].lower()
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            schema.setdefault("properties", {})
            schema["properties"].setdefault("apiVersion", {"type": "string"})
            schema["properties"].setdefault("kind", {"type": "string"})
            schema["properties"].setdefault("metadata", {"type": "object"})
            strict(schema)
            name = f"{kind}_{version['name']}.json"
            with open(os.path.join(out, name), "w") as f:
                json.dump(schema, f)
            print("generated", name)
PY

mode="${SANCTUM_K8S_SCHEMAS:-auto}"
if [ "$mode" = auto ]; then
  # A short probe: where GitHub is unreachable, generating the schemas is the normal path.
  if curl -fsS --connect-timeout 3 --max-time 5 -o /dev/null "$SCHEMA_PROBE" 2>/dev/null; then
    mode=default
  else
    mode=module
  fi
fi
case "$mode" in
  default)
    K8S_LOCATION=default
    echo "Kubernetes $KUBE_VERSION schemas: kubeconform's default location"
    ;;
  module)
    K8S_SCHEMAS="$WORK/k8s-schemas"
    mkdir -p "$K8S_SCHEMAS"
    K8S_DIR="$(module_dir "k8s.io/kubernetes@v$KUBE_VERSION")"
    echo "Kubernetes $KUBE_VERSION schemas: generated from $K8S_DIR/api/openapi-spec/v3"
    # One standalone strict schema per kind, named as kubeconform's default location names
    # them ({{ .ResourceKind }}{{ .KindSuffix }}.json: deployment-apps-v1.json, service-v1.json).
    python3 - "$K8S_DIR/api/openapi-spec/v3" "$K8S_SCHEMAS" <<'PY'
import glob, json, os, sys
spec_dir, out = sys.argv[1:3]
PREFIX = "#/components/schemas/"
count = 0
for path in sorted(glob.glob(os.path.join(spec_dir, "*_openapi.json"))):
    schemas = json.load(open(path)).get("components", {}).get("schemas", {})
    def rewrite(node):
        if isinstance(node, dict):
            node = {k: rewrite(v) for k, v in node.items()}
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(PREFIX):
                node["$ref"] = "#/definitions/" + ref[len(PREFIX):]
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            return node
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node
    definitions = {name: rewrite(s) for name, s in schemas.items()}
    for name, s in schemas.items():
        for gvk in s.get("x-kubernetes-group-version-kind", []):
            group = gvk.get("group", "")
            suffix = ("-" + group.split(".")[0].lower() if group else "") + "-" + gvk["version"].lower()
            file = os.path.join(out, gvk["kind"].lower() + suffix + ".json")
            if os.path.exists(file):
                continue
            with open(file, "w") as f:
                json.dump({"$ref": "#/definitions/" + name, "definitions": definitions}, f)
            count += 1
if count < 50:
    sys.exit(f"only {count} schemas generated from {spec_dir}")
print(f"generated {count} schemas")
PY
    K8S_LOCATION="$K8S_SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json"
    ;;
  *) die "SANCTUM_K8S_SCHEMAS must be default, module or auto, not $mode" ;;
esac

step "helm template | kubeconform -strict (Kubernetes $KUBE_VERSION)"
KUBECONFORM=(kubeconform -strict -summary -kubernetes-version "$KUBE_VERSION"
  -schema-location "$K8S_LOCATION"
  -schema-location "$CRD_SCHEMAS/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json")
RENDERED=()
for values in "${VALUE_SETS[@]}"; do
  name="$(basename "${values:-default}" .yaml)"
  out="$WORK/render-$name.yaml"
  template --include-crds ${values:+--values "$values"} >"$out"
  echo "-- $name"
  "${KUBECONFORM[@]}" "$out"
  RENDERED+=("$out")
done
echo "-- docs/examples/videotenant.yaml"
"${KUBECONFORM[@]}" docs/examples/videotenant.yaml

step "alert rules: promtool check and unit tests against recorded series (e2e/alerts/tests.yaml)"
# The rules as the chart renders them with its default thresholds, in Prometheus's own
# rule-file format; the tests name the file next to them.
mkdir -p "$WORK/alerts"
template --set prometheusRule.enabled=true --show-only templates/prometheusrule.yaml |
  python3 -c 'import sys, yaml; yaml.safe_dump(yaml.safe_load(sys.stdin)["spec"], sys.stdout, sort_keys=False)' \
  >"$WORK/alerts/rules.yaml"
promtool check rules "$WORK/alerts/rules.yaml"
cp e2e/alerts/tests.yaml "$WORK/alerts/tests.yaml"
promtool test rules "$WORK/alerts/tests.yaml"
# Every alert of the chart has a test (a rule nobody tested is not shipped).
python3 - "$WORK/alerts/rules.yaml" e2e/alerts/tests.yaml <<'PY'
import sys, yaml
rules = {r["alert"] for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"] if "alert" in r}
tested = {t["alertname"] for test in yaml.safe_load(open(sys.argv[2]))["tests"] for t in test.get("alert_rule_test", [])
          if t.get("exp_alerts")}
if rules - tested:
    sys.exit(f"alerts without a test that fires them: {sorted(rules - tested)}")
print(f"ok: all {len(rules)} alerts fire in a test")
PY

step "RBAC: no Secret create+get cluster-wide"
# A ClusterRole bound cluster-wide that may create and read Secrets can mint a token for
# any ServiceAccount (docs/iam.md). The chart grants Secrets only through RoleBindings the
# operator makes in tenant namespaces and its own namespace's Role. The rule is first
# run on a manifest that breaks it, so that it cannot pass by matching nothing.
cat >"$WORK/rbac-bad.yaml" <<'YAML'
kind: ClusterRole
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: too-wide}
rules: [{apiGroups: [""], resources: ["secrets"], verbs: ["get", "create"]}]
---
kind: ClusterRoleBinding
apiVersion: rbac.authorization.k8s.io/v1
metadata: {name: too-wide}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: too-wide}
subjects: [{kind: ServiceAccount, name: x, namespace: y}]
YAML
RBAC_CHECK="$(cat <<'PY'
import sys, yaml
def granted(rule, verb):
    verbs = rule.get("verbs") or []
    return verb in verbs or "*" in verbs
bad = []
for path in sys.argv[1:]:
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    bound = {d["roleRef"]["name"] for d in docs
             if d["kind"] == "ClusterRoleBinding" and d["roleRef"]["kind"] == "ClusterRole"}
    for name in sorted(bound & roles.keys()):
        for rule in roles[name].get("rules") or []:
            core = {"", "*"} & set(rule.get("apiGroups") or [])
            secrets = {"secrets", "*"} & set(rule.get("resources") or [])
            if core and secrets and not rule.get("resourceNames") \
                    and granted(rule, "create") and granted(rule, "get"):
                bad.append(f"{path.rsplit('/', 1)[-1]}: ClusterRole/{name} (bound cluster-wide) "
                           f"grants Secret create and get: {rule}")
    # Rules of one ClusterRole may be split: create in one rule, get in another.
    for name in sorted(bound & roles.keys()):
        rules = [r for r in roles[name].get("rules") or []
                 if {"", "*"} & set(r.get("apiGroups") or [])
                 and {"secrets", "*"} & set(r.get("resources") or []) and not r.get("resourceNames")]
        if any(granted(r, "create") for r in rules) and any(granted(r, "get") for r in rules) \
                and not any(granted(r, "create") and granted(r, "get") for r in rules):
            bad.append(f"ClusterRole/{name} (bound cluster-wide) grants Secret create and get in two rules")
if bad:
    sys.exit("\n".join(bad))
print("ok: no ClusterRole bound cluster-wide creates and reads Secrets")
PY
)"
if python3 -c "$RBAC_CHECK" "$WORK/rbac-bad.yaml" >/dev/null 2>&1; then
  die "the RBAC check passes a ClusterRole that creates and reads Secrets cluster-wide"
fi
python3 -c "$RBAC_CHECK" "${RENDERED[@]}"

step "checkov (security linter)"
# The skips in the output, listed with their reasons. Every skip must name a check and give a reason: checkov would accept a bare check ID,
# and splits the value at `=`, so a second `=` would break it.
python3 - "${RENDERED[@]}" <<'PY'
import re, sys, yaml
bad = []
for path in sys.argv[1:]:
    name = path.rsplit("/", 1)[-1]
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        # checkov has no check for this one: nothing of the chart is bound to cluster-admin.
        if doc["kind"] in ("ClusterRoleBinding", "RoleBinding") and doc["roleRef"]["name"] == "cluster-admin":
            bad.append(f"{name}: {doc['kind']}/{doc['metadata']['name']} binds cluster-admin")
        for key, value in ((doc.get("metadata") or {}).get("annotations") or {}).items():
            if "checkov.io/skip" not in key:
                continue
            where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
            if re.fullmatch(r"CKV2?_K8S_\d+=[^=]*\w[^=]*", str(value)):
                check, reason = str(value).split("=")
                print(f"{where}: skips {check}: {reason}")
            else:
                bad.append(f"{where} {key}: {value!r} is not <check>=<reason> with no other '='")
if bad:
    sys.exit("\n".join(bad))
PY
for out in "${RENDERED[@]}"; do
  name="$(basename "$out" .yaml)"
  echo "-- ${name#render-}"
  # Each value set on its own, so that a NetworkPolicy of one cannot cover the pods of
  # another. --skip-download and the skipped update check keep checkov off the network;
  # the checks themselves ship with it.
  CKV_SKIP_PACKAGE_UPDATE_CHECK=true checkov --framework kubernetes -f "$out" \
    --quiet --compact --skip-download >"$WORK/checkov.out" 2>&1 || {
    cat "$WORK/checkov.out"
    die "checkov reports failed checks in the output of ${name#render-}"
  }
  cat "$WORK/checkov.out"
  grep -q 'Passed checks: [1-9]' "$WORK/checkov.out" || die "checkov ran no check on $out"
  if grep -qi 'parsing errors' "$WORK/checkov.out"; then die "checkov could not parse $out"; fi
done

step "chart checks passed"
