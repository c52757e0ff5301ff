//! A region exposed on node ports (`expose.mode: NodePort`), on the local cluster's real
//! node: the operator creates the NodePort Service, reads the ports the cluster gave it,
//! and the media node offers the Kubernetes node's address with them. Headless Chromium on
//! this machine sends its media to that address (kube-proxy carries it to the pod, the
//! tenant's NetworkPolicy admits it), and a str0m client whose only path is ICE-TCP
//! publishes through the TCP node port.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::Service;
use kube::{Api, ResourceExt};
use sanctum_api::{ExposeMode, VideoTenant};
use sanctum_e2e::node::{RealNode, browser_call, join_token, one_node_tenant, port_forward};
use sanctum_e2e::{Cluster, Operator, unique, wait_gone, with_logs};
use sanctum_media_client::{Kind, Options, Transport};

#[tokio::test]
async fn node_ports_carry_udp_and_ice_tcp_media_to_the_region() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let node = RealNode::from_env()?;
    let run = unique("expose");
    let op = Operator::start(&run).await?;
    with_logs(&op, || body(&cluster, &node, &run)).await
}

async fn body(cluster: &Cluster, node: &RealNode, run: &str) -> Result<()> {
    let client = &cluster.client;
    let (tenant, namespace, pod) = one_node_tenant(client, node, run, |t| {
        t.spec.media.regions[0].expose.mode = ExposeMode::NodePort;
    })
    .await?;
    let tenants = Api::<VideoTenant>::all(client.clone());

    // The ports the cluster allocated, as the Service and the tenant's status show them.
    let region = &tenant.spec.media.regions[0].name;
    let service = Api::<Service>::namespaced(client.clone(), &namespace)
        .get(&format!("media-{region}-media"))
        .await?;
    let spec = service.spec.clone().context("service spec")?;
    ensure!(
        spec.type_.as_deref() == Some("NodePort"),
        "{:?}",
        spec.type_
    );
    ensure!(spec.external_traffic_policy.as_deref() == Some("Local"));
    let node_port = |name: &str| {
        spec.ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| p.node_port)
            .with_context(|| format!("node port {name}"))
    };
    let (udp, tcp) = (node_port("media")?, node_port("media-tcp")?);
    let status = tenants.get(run).await?.status.context("status")?;
    let shown = status.regions[0].media.clone().unwrap_or_default();
    ensure!(
        shown == format!("<node address> udp/{udp} tcp/{tcp}"),
        "status.regions[0].media: {shown:?}"
    );

    // Chromium: signaling through a port-forward (standing in for the ingress), media to
    // the node's address and UDP node port, as the pod's answer says.
    let forward = port_forward(&namespace, &pod.name_any(), 8443).await?;
    let room = "room-node-port";
    let publish = join_token(client, &namespace, run, room, "u-camera", "host").await?;
    let view = join_token(client, &namespace, run, room, "u-viewer", "observer").await?;
    let expected = format!("{}:{udp}", node.node_ip);
    browser_call(
        &format!("https://{}", forward.local),
        room,
        &publish,
        &view,
        &[("SANCTUM_EXPECT_REMOTE", &expected)],
    )
    .await
    .context("the browser call through the node port")?;

    // A str0m client with no UDP at all: its offer has no candidate, and it connects to the
    // TCP candidate of the answer, the node's address and TCP node port.
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let token = join_token(client, &namespace, run, room, "u-tcp", "host").await?;
    let viewer_token = join_token(client, &namespace, run, room, "u-tcp-view", "observer").await?;
    let opts = |token: &str| Options {
        base: format!("https://{}", forward.local),
        room: room.into(),
        token: token.into(),
        layer: None,
        local_ip: node.host_ip.into(),
        fps: 30,
        frame_bytes: 1200,
        video_slots: 1,
        transport: Transport::Tcp,
    };
    let publisher = sanctum_media_client::connect(&http, Kind::Publish, &opts(&token)).await?;
    let viewer =
        sanctum_media_client::connect(&http, Kind::Subscribe, &opts(&viewer_token)).await?;
    let mut frames = 0;
    for _ in 0..100 {
        frames = viewer.stats().frames.len();
        if frames >= 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let remote = viewer.stats().remote;
    ensure!(
        frames >= 60,
        "the ICE-TCP viewer got {frames} frames (publisher connected: {})",
        publisher.stats().connected
    );
    ensure!(
        remote == Some(format!("{}:{tcp}", node.node_ip).parse()?),
        "ICE-TCP media came from {remote:?}, not the node's TCP node port"
    );
    publisher.close().await?;
    viewer.close().await?;

    tenants.delete(run, &Default::default()).await?;
    wait_gone(&tenants, run, Duration::from_secs(120)).await
}

/// A `LoadBalancer` region: no media node runs until the balancer has an address; the test
/// then plays the cloud's controller and publishes one (the real node's own address, where
/// kube-proxy forwards the balancer's ports to the pod), and the node offers it.
#[tokio::test]
async fn a_load_balancer_region_waits_for_its_address_then_offers_it() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let node = RealNode::from_env()?;
    let run = unique("expose-lb");
    let op = Operator::start(&run).await?;
    with_logs(&op, || load_balancer(&cluster, &node, &run)).await
}

async fn load_balancer(cluster: &Cluster, node: &RealNode, run: &str) -> Result<()> {
    let client = &cluster.client;
    let mut tenant: VideoTenant = sanctum_e2e::example_tenant(run, run)?;
    tenant.spec.media.regions.truncate(1);
    tenant.spec.media.regions[0].replicas = 1;
    tenant.spec.media.regions[0].expose.mode = ExposeMode::LoadBalancer;
    tenant.spec.network.media_cidrs = vec![format!("{}/32", node.host_ip)];
    sanctum_e2e::node::pin_to_real_node(&mut tenant);
    let tenants = Api::<VideoTenant>::all(client.clone());
    let namespace = sanctum_e2e::node::create_tenant(client, &tenant).await?;
    let region = &tenant.spec.media.regions[0].name;
    let name = format!("media-{region}-media");
    let services = Api::<Service>::namespaced(client.clone(), &namespace);

    // Waiting: the Service exists, the Deployment has no replicas, and the status says why.
    sanctum_e2e::wait_for(
        "the LoadBalancer Service",
        Duration::from_secs(60),
        || async { Ok(services.get_opt(&name).await?.is_some()) },
    )
    .await?;
    sanctum_e2e::wait_for(
        "MediaReady to name the wait",
        Duration::from_secs(60),
        || async {
            let t = tenants.get(run).await?;
            Ok(t.status.iter().flat_map(|s| &s.conditions).any(|c| {
                c.type_ == "MediaReady"
                    && c.status == "False"
                    && c.message.contains(region.as_str())
            }))
        },
    )
    .await?;
    let deployment =
        Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &namespace)
            .get(&format!("media-{region}"))
            .await?;
    ensure!(
        deployment.spec.and_then(|s| s.replicas) == Some(0),
        "a media node started before it knew its address"
    );

    // The cloud's part: an address for the balancer.
    let address = node.node_ip.to_string();
    let status = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": address}]}}});
    services
        .patch_status(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&status),
        )
        .await?;
    sanctum_e2e::wait_condition(&tenants, run, "Ready", "True", Duration::from_secs(180)).await?;
    let shown = tenants.get(run).await?.status.context("status")?.regions[0]
        .media
        .clone()
        .unwrap_or_default();
    ensure!(
        shown == format!("{address} udp/10000 tcp/10000"),
        "status.regions[0].media: {shown:?}"
    );
    let pods = sanctum_e2e::node::wait_running(
        client,
        &namespace,
        sanctum_e2e::node::MEDIA_PODS,
        1,
        Duration::from_secs(60),
    )
    .await?;
    let forward = port_forward(&namespace, &pods[0].name_any(), 8443).await?;
    let room = "room-balancer";
    let publish = join_token(client, &namespace, run, room, "u-camera", "host").await?;
    let view = join_token(client, &namespace, run, room, "u-viewer", "observer").await?;
    browser_call(
        &format!("https://{}", forward.local),
        room,
        &publish,
        &view,
        &[("SANCTUM_EXPECT_REMOTE", &format!("{address}:10000"))],
    )
    .await
    .context("the browser call through the balancer's address")?;
    tenants.delete(run, &Default::default()).await?;
    wait_gone(&tenants, run, Duration::from_secs(120)).await
}
