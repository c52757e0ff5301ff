//! A data-key rotation during a call on the real node: the operator adds the new version
//! to the tenant's Secret and leaves the media Deployment alone; kubelet updates the pod's
//! mounted Secret and the running node takes the new version (its metric says so) while
//! the call's sessions stay connected and frames keep flowing. The pod is never replaced.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use sanctum_api::VideoTenant;
use sanctum_e2e::node::{RealNode, join_token, one_node_tenant, port_forward};
use sanctum_e2e::{Cluster, Operator, unique, wait_for, wait_gone, with_logs};
use sanctum_media_client::{Kind, Options, Transport};

#[tokio::test]
async fn a_rotation_during_a_call_reaches_the_running_node_and_drops_nothing() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let node = RealNode::from_env()?;
    let run = unique("rotate");
    let op = Operator::start(&run).await?;
    with_logs(&op, || body(&cluster, &node, &run)).await
}

async fn body(cluster: &Cluster, node: &RealNode, run: &str) -> Result<()> {
    let client = &cluster.client;
    let (_, namespace, pod) = one_node_tenant(client, node, run, |_| {}).await?;
    let tenants = Api::<VideoTenant>::all(client.clone());
    let signaling = port_forward(&namespace, &pod.name_any(), 8443).await?;
    let metrics = port_forward(&namespace, &pod.name_any(), 9090).await?;
    let version = || async {
        let text = reqwest::get(format!("http://{}/metrics", metrics.local))
            .await?
            .text()
            .await?;
        anyhow::Ok(
            text.lines()
                .find_map(|l| l.strip_prefix("sanctum_media_tenant_key_version "))
                .and_then(|v| v.parse::<i64>().ok()),
        )
    };
    ensure!(version().await? == Some(1), "the node starts on version 1");

    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let room = "room-rotation";
    let opts = |token: String| Options {
        base: format!("https://{}", signaling.local),
        room: room.into(),
        token,
        layer: None,
        local_ip: node.host_ip.into(),
        fps: 30,
        frame_bytes: 1200,
        video_slots: 1,
        transport: Transport::Udp,
    };
    let camera = join_token(client, &namespace, run, room, "u-camera", "host").await?;
    let viewer = join_token(client, &namespace, run, room, "u-viewer", "observer").await?;
    let publisher = sanctum_media_client::connect(&http, Kind::Publish, &opts(camera)).await?;
    let viewer = sanctum_media_client::connect(&http, Kind::Subscribe, &opts(viewer)).await?;
    wait_for(
        "video reaches the viewer",
        Duration::from_secs(30),
        || async { Ok(viewer.stats().frames.len() >= 30) },
    )
    .await?;

    let poke = serde_json::json!({"metadata": {"annotations": {"sanctum.dev/rotate-data-key": "during-a-call"}}});
    tenants
        .patch(run, &PatchParams::default(), &Patch::Merge(&poke))
        .await?;
    wait_for(
        "key version 2 in the status",
        Duration::from_secs(60),
        || async { Ok(tenants.get(run).await?.status.and_then(|s| s.key_version) == Some(2)) },
    )
    .await?;
    // Kubelet refreshes mounted Secrets on its sync period (about a minute), the node looks
    // every 10 s.
    wait_for(
        "the running node to take version 2",
        Duration::from_secs(180),
        || async { Ok(version().await? == Some(2)) },
    )
    .await?;

    sanctum_e2e::node::call_goes_on(&viewer, &[("publisher", &publisher), ("viewer", &viewer)])
        .await
        .context("across the rotation")?;
    let now = Api::<Pod>::namespaced(client.clone(), &namespace)
        .get(&pod.name_any())
        .await
        .context("the pod of the call is still there")?;
    let restarts = now
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.first().map(|c| c.restart_count));
    ensure!(
        now.metadata.uid == pod.metadata.uid && restarts == Some(0),
        "the media pod was replaced or restarted ({restarts:?})"
    );
    publisher.close().await?;
    viewer.close().await?;
    tenants.delete(run, &Default::default()).await?;
    wait_gone(&tenants, run, Duration::from_secs(120)).await
}
