//! Rooms across a region's replicas, on the real node: a region of two media-node pods,
//! each reached through its own address (as a Service balances requests), and six
//! participants whose first requests alternate between them. They all land in one room on
//! one pod, where each receives the other five's video; the pods find each other through
//! the region's headless Service and talk across the pod network, through the tenant's
//! NetworkPolicies as kube-router enforces them.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use sanctum_api::VideoTenant;
use sanctum_e2e::node::{
    MEDIA_PODS, RealNode, create_tenant, join_token, pin_to_real_node, port_forward, wait_running,
};
use sanctum_e2e::{
    Cluster, Operator, example_tenant, unique, wait_condition, wait_for, wait_gone, with_logs,
};
use sanctum_media_client::{Kind, Options, Transport};

#[tokio::test]
async fn six_participants_alternating_between_two_replicas_meet_in_one_room() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let node = RealNode::from_env()?;
    let run = unique("place");
    let op = Operator::start(&run).await?;
    with_logs(&op, || async {
        let client = &cluster.client;
        let mut tenant: VideoTenant = example_tenant(&run, &run)?;
        tenant.spec.media.regions.truncate(1);
        tenant.spec.media.regions[0].replicas = 2;
        tenant.spec.network.media_cidrs = vec![format!("{}/32", node.host_ip)];
        pin_to_real_node(&mut tenant);
        let tenants = Api::<VideoTenant>::all(client.clone());
        let namespace = create_tenant(client, &tenant).await?;
        wait_condition(&tenants, &run, "Ready", "True", Duration::from_secs(180)).await?;
        let pods = wait_running(client, &namespace, MEDIA_PODS, 2, Duration::from_secs(60)).await?;
        ensure!(pods.len() == 2, "two replicas");
        // Each replica's own address, as a load balancer would pick one per request.
        let forwards = [
            port_forward(&namespace, &pods[0].name_any(), 8443).await?,
            port_forward(&namespace, &pods[1].name_any(), 8443).await?,
        ];
        let cert = Api::<Secret>::namespaced(client.clone(), &namespace)
            .get("media-node-tls")
            .await?
            .data
            .and_then(|d| d.get("tls.crt").cloned())
            .context("the signaling certificate")?;
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&cert.0)?])
            .timeout(Duration::from_secs(20))
            .build()?;
        let room = "visit-placed";
        let mut sessions = Vec::new();
        let mut subscribers = Vec::new();
        for i in 0..6 {
            let forward = &forwards[i % 2];
            let token = join_token(
                client,
                &namespace,
                &run,
                room,
                &format!("u-{i}"),
                "participant",
            )
            .await?;
            let opts = |video_slots| Options {
                base: format!("https://{}", forward.local),
                room: room.into(),
                token: token.clone(),
                layer: None,
                local_ip: node.host_ip.into(),
                fps: 30,
                frame_bytes: 1200,
                video_slots,
                transport: Transport::Udp,
            };
            sessions.push(sanctum_media_client::connect(&http, Kind::Publish, &opts(1)).await?);
            subscribers
                .push(sanctum_media_client::connect(&http, Kind::Subscribe, &opts(5)).await?);
        }
        wait_for(
            "each participant to receive the other five's video",
            Duration::from_secs(60),
            || async {
                Ok(subscribers.iter().all(|s| {
                    let stats = s.stats();
                    stats.video_by_mid.len() == 5 && stats.video_by_mid.values().all(|n| *n >= 30)
                }))
            },
        )
        .await?;
        // One pod hosts the room: every session's media goes to the same pod address.
        let hosts: std::collections::BTreeSet<String> = sessions
            .iter()
            .chain(subscribers.iter())
            .filter_map(|s| s.stats().remote.map(|a| a.ip().to_string()))
            .collect();
        ensure!(
            hosts.len() == 1,
            "media of the room goes to one pod: {hosts:?}"
        );
        for s in subscribers.into_iter().chain(sessions) {
            let (status, _) = s.close().await?;
            ensure!(status == 200, "leave: {status}");
        }
        tenants.delete(&run, &Default::default()).await?;
        wait_gone(&tenants, &run, Duration::from_secs(120)).await
    })
    .await
}
