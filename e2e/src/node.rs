//! The local cluster's real node (e2e/controlplane/node.sh): pods that must really run
//! (media nodes from the image built here, network probes, the operator from its chart)
//! are pinned to it; everything else stays on kwok's simulated nodes.
//!
//! Nothing here simulates: pods are scheduled, started by kubelet and containerd, and
//! their traffic crosses kube-router's NetworkPolicy rules. What the harness does is
//! place pods, make the TLS Secret cert-manager would make, forward a port as
//! `kubectl port-forward` does, and read what a probe pod reports.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, ResourceRequirements, Secret, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use sanctum_api::VideoTenant;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::wait_for;

/// Label (and taint key) of the real node: only pods that select and tolerate it run there.
pub const NODE_LABEL: &str = "sanctum.dev/real-node";
/// The network probe image `e2e/images.sh --test` builds.
pub const PROBE_IMAGE: &str = "localhost/sanctum-e2e-netprobe:0.1.0";

/// Where the real node is, as `e2e/controlplane/cluster.sh up` reports it.
#[derive(Clone, Debug)]
pub struct RealNode {
    /// Node name.
    pub name: String,
    /// This machine's end of the node's link: where pods reach the API server and moto.
    pub host_ip: Ipv4Addr,
    /// A second machine address no test tenant's egress allows.
    pub outside_ip: Ipv4Addr,
    /// The node's InternalIP.
    pub node_ip: Ipv4Addr,
    /// Pod addresses of the node (routed from this machine).
    pub pod_cidr: String,
}

impl RealNode {
    /// Reads the node's addresses from the environment `e2e/test.sh` exports; a missing
    /// node is an error, never a skipped test.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| {
                format!("{name} is not set: run e2e/test.sh, which starts the local cluster with its real node")
            })
        };
        Ok(Self {
            name: var("SANCTUM_E2E_REAL_NODE")?,
            host_ip: var("SANCTUM_E2E_HOST_IP")?.parse()?,
            outside_ip: var("SANCTUM_E2E_OUTSIDE_IP")?.parse()?,
            node_ip: var("SANCTUM_E2E_NODE_IP")?.parse()?,
            pod_cidr: var("SANCTUM_E2E_POD_CIDR")?,
        })
    }
}

/// Node selector of pods that must run on the real node.
pub fn node_selector() -> BTreeMap<String, String> {
    BTreeMap::from([(NODE_LABEL.to_string(), "true".to_string())])
}

/// The toleration of the real node's taint.
pub fn toleration() -> Toleration {
    Toleration {
        key: Some(NODE_LABEL.into()),
        operator: Some("Exists".into()),
        effect: Some("NoSchedule".into()),
        ..Default::default()
    }
}

/// Puts every region of `tenant` on the real node, with small requests so that several
/// tests' pods fit on its two CPUs.
pub fn pin_to_real_node(tenant: &mut VideoTenant) {
    let q = |s: &str| Quantity(s.to_string());
    tenant.spec.media.resources = Some(ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), q("50m")),
            ("memory".into(), q("64Mi")),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".into(), q("1")),
            ("memory".into(), q("256Mi")),
        ])),
        ..Default::default()
    });
    for region in &mut tenant.spec.media.regions {
        region.node_selector = node_selector();
        region.tolerations = vec![toleration()];
    }
}

/// Makes the media nodes' signaling certificate (what cert-manager would issue): a
/// self-signed certificate for `names` in a `kubernetes.io/tls` Secret.
pub async fn create_tls_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    names: &[&str],
) -> Result<()> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::generate_simple_self_signed(names).context("making a certificate")?;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".into(), ByteString(cert.cert.pem().into_bytes())),
            (
                "tls.key".into(),
                ByteString(cert.signing_key.serialize_pem().into_bytes()),
            ),
        ])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .with_context(|| format!("creating Secret {namespace}/{name}"))?;
    Ok(())
}

/// Waits until `count` pods matching `selector` run with every container ready.
pub async fn wait_running(
    client: &Client,
    namespace: &str,
    selector: &str,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Pod>> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(selector);
    let ready = |p: &Pod| {
        p.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    };
    let what = format!("{count} ready pods {selector} in {namespace}");
    let outcome = wait_for(&what, timeout, || async {
        let list = pods.list(&params).await?;
        Ok(list.items.iter().filter(|p| ready(p)).count() >= count)
    })
    .await;
    if let Err(e) = outcome {
        let list = pods.list(&params).await?;
        let states: Vec<String> = list
            .items
            .iter()
            .map(|p| format!("{}: {:?}", p.name_any(), p.status))
            .collect();
        return Err(e.context(format!("pods now: {}", states.join("; "))));
    }
    Ok(pods
        .list(&params)
        .await?
        .items
        .into_iter()
        .filter(ready)
        .collect())
}

/// A `kubectl port-forward` to a pod, stopped when dropped.
pub struct PortForward {
    _child: Child,
    /// Where the forwarded port listens on this machine.
    pub local: SocketAddr,
}

/// Forwards a local port to `port` of pod `namespace/pod` through the API server and
/// kubelet (as `kubectl port-forward` does: no NetworkPolicy applies to it).
pub async fn port_forward(namespace: &str, pod: &str, port: u16) -> Result<PortForward> {
    let kubectl = std::env::var("SANCTUM_E2E_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let mut child = Command::new(&kubectl)
        .args(["-n", namespace, "port-forward", "--address", "127.0.0.1"])
        .args([format!("pod/{pod}"), format!(":{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {kubectl} port-forward"))?;
    let stdout = child.stdout.take().context("port-forward stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("port-forward did not start in 30 s")??
        .context("port-forward exited")?;
    // "Forwarding from 127.0.0.1:40123 -> 8443"
    let local: SocketAddr = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("unexpected port-forward output: {line}"))?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(PortForward {
        _child: child,
        local,
    })
}

/// What the probe found for one check.
#[derive(Clone, Debug, Deserialize)]
pub struct Reach {
    /// The check as given (`tcp:10.244.1.5:8443`).
    pub check: String,
    /// Whether it connected, resolved or was answered.
    pub reachable: bool,
    /// What happened.
    pub detail: String,
}

/// Runs the network probe as a pod in `namespace` on the real node (Pod Security
/// `restricted`, like every tenant workload) and returns what each check found. The
/// probe first waits (at most 30 s) until the check `ready.0` is reachable, or refused
/// when `ready.1` is false, so the enforcer has taken in the new pod before anything is
/// judged; a rule that never takes effect still fails the check that follows.
pub async fn probe(
    client: &Client,
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    ready: (&str, bool),
    checks: &[String],
) -> Result<Vec<Reach>> {
    let flag = if ready.1 {
        "--wait-for"
    } else {
        "--wait-refused"
    };
    let args: Vec<String> = [flag.to_string(), ready.0.to_string()]
        .into_iter()
        .chain(checks.iter().cloned())
        .collect();
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "nodeSelector": node_selector(),
            "tolerations": [toleration()],
            "securityContext": {
                "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"}
            },
            "containers": [{
                "name": "probe",
                "image": PROBE_IMAGE,
                "imagePullPolicy": "Never",
                "args": args,
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "limits": {"cpu": "200m", "memory": "32Mi"}
                },
                "securityContext": {
                    "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]}
                }
            }]
        }
    }))?;
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    pods.create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating probe pod {namespace}/{name}"))?;
    let terminated = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.terminated.clone())
    };
    wait_for(
        &format!("probe {namespace}/{name} to finish"),
        Duration::from_secs(90),
        || async { Ok(terminated(&pods.get(name).await?).is_some()) },
    )
    .await?;
    let t = terminated(&pods.get(name).await?).context("probe result")?;
    let message = (t.exit_code, t.message.unwrap_or_default());
    let _ = pods.delete(name, &DeleteParams::background()).await;
    let (code, message) = message;
    ensure!(code == 0, "probe {name} exited with {code}: {message}");
    let found: Vec<Reach> =
        serde_json::from_str(&message).with_context(|| format!("probe output: {message}"))?;
    if found.len() != checks.len() {
        bail!(
            "probe {name} answered {} of {} checks",
            found.len(),
            checks.len()
        );
    }
    Ok(found)
}

/// A join token for `room`, signed with the tenant's signing key as the tenant's
/// application would (`sanctum-media-node mint-token`).
pub async fn join_token(
    client: &Client,
    namespace: &str,
    tenant: &str,
    room: &str,
    user: &str,
    role: &str,
) -> Result<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get("join-token-signing-key")
        .await?;
    let pem = secret
        .data
        .as_ref()
        .and_then(|d| d.get("private.pem"))
        .context("the signing key Secret holds private.pem")?;
    mint_token(&pem.0, tenant, room, user, role)
}

/// A join token signed with `private_pem` (a tenant's join-token signing key).
pub fn mint_token(
    private_pem: &[u8],
    tenant: &str,
    room: &str,
    user: &str,
    role: &str,
) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("private.pem");
    std::fs::write(&key, private_pem)?;
    let out = std::process::Command::new(crate::workspace_binary("sanctum-media-node")?)
        .args([
            "mint-token",
            "--tenant",
            tenant,
            "--room",
            room,
            "--user",
            user,
            "--role",
            role,
        ])
        .args(["--ttl-seconds", "600"])
        .arg("--key")
        .arg(&key)
        .output()?;
    ensure!(
        out.status.success(),
        "mint-token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// Label selector of media-node pods.
pub const MEDIA_PODS: &str = "app.kubernetes.io/component=media-node";

/// Creates `tenant` and, once its namespace exists, the media nodes' signaling
/// certificate (what cert-manager would issue, for 127.0.0.1: tests reach signaling
/// through a port-forward); returns the tenant namespace.
pub async fn create_tenant(client: &Client, tenant: &VideoTenant) -> Result<String> {
    Api::<VideoTenant>::all(client.clone())
        .create(&PostParams::default(), tenant)
        .await?;
    let namespace = format!("vt-{}", tenant.name_any());
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    wait_for("the tenant namespace", Duration::from_secs(60), || async {
        Ok(namespaces.get_opt(&namespace).await?.is_some())
    })
    .await?;
    create_tls_secret(
        client,
        &namespace,
        "media-node-tls",
        &["127.0.0.1", "localhost"],
    )
    .await?;
    Ok(namespace)
}

/// Runs `media-node/web/browser-test.mjs` against a node of the cluster: headless Chromium
/// opens the node's own call page through `signaling` (an HTTPS base such as a
/// port-forward), publishes into `room` with `publish` and decodes with `view`. `env` adds
/// the script's expectations (`SANCTUM_EXPECT_REMOTE`, ...). Returns its output.
pub async fn browser_call(
    signaling: &str,
    room: &str,
    publish: &str,
    view: &str,
    env: &[(&str, &str)],
) -> Result<String> {
    let out = Command::new("node")
        .arg(crate::repo_root().join("media-node/web/browser-test.mjs"))
        .env("SANCTUM_SIGNALING_URL", signaling)
        .env("SANCTUM_ROOM", room)
        .env("SANCTUM_PUBLISH_TOKEN", publish)
        .env("SANCTUM_VIEW_TOKEN", view)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .context("running node media-node/web/browser-test.mjs")?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success() && stdout.contains("frames decoded through the SFU"),
        "the browser call failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// The example tenant cut to one media node on the real node, with media from this
/// machine (the host end of the node's link) admitted, after `customize`; created, Ready,
/// and its pod running. Returns the tenant as created, its namespace and the pod.
pub async fn one_node_tenant(
    client: &Client,
    node: &RealNode,
    run: &str,
    customize: impl FnOnce(&mut VideoTenant),
) -> Result<(VideoTenant, String, Pod)> {
    let mut tenant: VideoTenant = crate::example_tenant(run, run)?;
    tenant.spec.media.regions.truncate(1);
    tenant.spec.media.regions[0].replicas = 1;
    tenant.spec.network.media_cidrs = vec![format!("{}/32", node.host_ip)];
    pin_to_real_node(&mut tenant);
    customize(&mut tenant);
    let tenants = Api::<VideoTenant>::all(client.clone());
    let namespace = create_tenant(client, &tenant).await?;
    crate::wait_condition(&tenants, run, "Ready", "True", Duration::from_secs(180)).await?;
    let mut pods = wait_running(client, &namespace, MEDIA_PODS, 1, Duration::from_secs(60)).await?;
    let pod = pods.pop().context("a media pod")?;
    Ok((tenant, namespace, pod))
}

/// Checks that a call goes on: `viewer` receives at least 30 more frames within 2 s, and
/// every one of `sessions` is still live on the node, not closed by it.
pub async fn call_goes_on(
    viewer: &sanctum_media_client::Session,
    sessions: &[(&str, &sanctum_media_client::Session)],
) -> Result<()> {
    let before = viewer.stats().frames.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = viewer.stats().frames.len();
    ensure!(
        after >= before + 30,
        "frames stopped flowing: {before} -> {after}"
    );
    for (who, session) in sessions {
        let (status, body) = session.state().await?;
        ensure!(
            status == 200 && body.contains("live") && !session.stats().closed_by_node,
            "the {who}'s session ended: {status} {body}"
        );
    }
    Ok(())
}
