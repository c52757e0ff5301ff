//! Media nodes run for real: a tenant's media-node pods, from the image `e2e/images.sh`
//! builds, run on the local cluster's real node (kubelet, containerd, runc) under Pod
//! Security `restricted` and become Ready; headless Chromium on this machine (outside the
//! pod network) opens the node's own call page, publishes over WHIP and a second page
//! decodes the video over WHEP, with media sent to the address the pod advertises.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{Api, ResourceExt};
use sanctum_api::VideoTenant;
use sanctum_e2e::node::{RealNode, browser_call, join_token, one_node_tenant, port_forward};
use sanctum_e2e::{Cluster, Operator, unique, wait_gone, with_logs};

#[tokio::test]
async fn media_nodes_run_on_a_real_kubelet_and_carry_a_browser_call() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let node = RealNode::from_env()?;
    let run = unique("call");
    let op = Operator::start(&run).await?;
    with_logs(&op, || body(&cluster, &node, &run)).await
}

async fn body(cluster: &Cluster, node: &RealNode, run: &str) -> Result<()> {
    let client = &cluster.client;
    let (_, namespace, pod) = one_node_tenant(client, node, run, |_| {}).await?;
    let tenants = Api::<VideoTenant>::all(client.clone());
    let pod = &pod;
    check_hardening(pod, node)?;
    let enforce = Api::<Namespace>::all(client.clone())
        .get(&namespace)
        .await?
        .labels()
        .get("pod-security.kubernetes.io/enforce")
        .cloned();
    ensure!(
        enforce.as_deref() == Some("restricted"),
        "PSA enforce label: {enforce:?}"
    );

    // Signaling through a port-forward (standing in for the ingress); media straight to
    // the pod's advertised address.
    let forward = port_forward(&namespace, &pod.name_any(), 8443).await?;
    let room = "room-real-node";
    let publish = join_token(client, &namespace, run, room, "u-camera", "host").await?;
    let view = join_token(client, &namespace, run, room, "u-viewer", "observer").await?;
    browser_call(
        &format!("https://{}", forward.local),
        room,
        &publish,
        &view,
        &[],
    )
    .await?;
    // Its pod address (the node's only candidate) is on the real node's pod network.
    let pod_ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .context("pod IP")?;
    let prefix = node.pod_cidr.trim_end_matches("0/24");
    ensure!(
        pod_ip.starts_with(prefix),
        "pod {pod_ip} is outside the real node's {}",
        node.pod_cidr
    );
    tenants.delete(run, &Default::default()).await?;
    wait_gone(&tenants, run, Duration::from_secs(120)).await
}

/// The pod really runs as Pod Security `restricted` demands, from the image built here.
fn check_hardening(pod: &Pod, node: &RealNode) -> Result<()> {
    let spec = pod.spec.as_ref().context("pod spec")?;
    ensure!(
        spec.node_name.as_deref() == Some(node.name.as_str()),
        "runs on {:?}",
        spec.node_name
    );
    ensure!(
        spec.automount_service_account_token == Some(false),
        "no API token in the pod"
    );
    let psc = spec
        .security_context
        .as_ref()
        .context("pod security context")?;
    ensure!(psc.run_as_user == Some(65532) && psc.run_as_non_root == Some(true));
    ensure!(psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()) == Some("RuntimeDefault"));
    let container = &spec.containers[0];
    let sc = container
        .security_context
        .as_ref()
        .context("container security context")?;
    ensure!(sc.read_only_root_filesystem == Some(true));
    ensure!(sc.allow_privilege_escalation == Some(false));
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .context("container status")?;
    ensure!(status.ready, "container ready");
    ensure!(
        status.image == "ghcr.io/sanctum-dev/sanctum-media-node:0.1.0",
        "image {}",
        status.image
    );
    ensure!(status.image_id.starts_with("sha256:") || status.image_id.contains("@sha256:"));
    Ok(())
}
