//! Rooms across a region's replicas, on the real node: a region of two media-node pods,
//! each reached through its own address (as a Service balances requests), and six
//! participants whose first requests alternate between them. They all land in one room on
//! one pod, where each receives the other five's video; the pods find each other through
//! the region's headless Service and talk across the pod network, through the tenant's
//! NetworkPolicies as kube-router enforces them. Then the host pod drains (deleted, as a
//! node drain evicts it): the room's sessions go on, a new participant of that room still
//! joins it there, and a new room lands on a pod that is not draining, also when its
//! first request reaches the draining one.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::DeleteParams;
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
        let opts = |forward: &sanctum_e2e::node::PortForward, room: &str, token: &str, video_slots| {
            Options {
                base: format!("https://{}", forward.local),
                room: room.into(),
                token: token.to_string(),
                layer: None,
                local_ip: node.host_ip.into(),
                fps: 30,
                frame_bytes: 1200,
                video_slots,
                transport: Transport::Udp,
            }
        };
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
            sessions.push(
                sanctum_media_client::connect(&http, Kind::Publish, &opts(forward, room, &token, 1))
                    .await?,
            );
            subscribers.push(
                sanctum_media_client::connect(&http, Kind::Subscribe, &opts(forward, room, &token, 5))
                    .await?,
            );
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

        // The host pod drains: deleted with its grace period, it gets SIGTERM and stops
        // taking new rooms while its sessions go on.
        let host_ip = hosts.iter().next().cloned().context("the host's address")?;
        let ip_of = |p: &Pod| p.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
        let (host, other) = if ip_of(&pods[0]) == host_ip { (0, 1) } else { (1, 0) };
        let other_ip = ip_of(&pods[other]);
        let pod_api = Api::<Pod>::namespaced(client.clone(), &namespace);
        pod_api
            .delete(&pods[host].name_any(), &DeleteParams::default())
            .await?;
        wait_for("the host pod to terminate", Duration::from_secs(30), || async {
            Ok(pod_api
                .get_opt(&pods[host].name_any())
                .await?
                .is_some_and(|p| p.metadata.deletion_timestamp.is_some()))
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let received = |subs: &[sanctum_media_client::Session]| -> Vec<u64> {
            subs.iter().map(|s| s.stats().video_received).collect()
        };
        let before = received(&subscribers);
        tokio::time::sleep(Duration::from_secs(4)).await;
        let after = received(&subscribers);
        ensure!(
            before.iter().zip(&after).all(|(b, a)| a >= &(b + 30)),
            "the room's media stops while its host drains: {before:?} then {after:?}"
        );
        // A new participant of the room still joins it on the draining host.
        let late = join_token(client, &namespace, &run, room, "u-late", "participant").await?;
        let late = sanctum_media_client::connect(&http, Kind::Subscribe, &opts(&forwards[other], room, &late, 5))
            .await?;
        // A new room goes to the other pod, whichever pod its first request reaches.
        let mut newcomers = Vec::new();
        for (i, forward) in [&forwards[host], &forwards[other]].into_iter().enumerate() {
            let token =
                join_token(client, &namespace, &run, "visit-new", &format!("u-new-{i}"), "participant")
                    .await?;
            newcomers.push(
                sanctum_media_client::connect(&http, Kind::Publish, &opts(forward, "visit-new", &token, 1))
                    .await?,
            );
        }
        let remote = |s: &sanctum_media_client::Session| s.stats().remote.map(|a| a.ip().to_string());
        wait_for("the late joiner and the new room's media", Duration::from_secs(30), || async {
            Ok(late.stats().video_by_mid.len() == 5
                && newcomers.iter().all(|s| remote(s).is_some()))
        })
        .await?;
        ensure!(
            remote(&late).as_deref() == Some(host_ip.as_str()),
            "the late joiner of the draining host's room went to {:?}",
            remote(&late)
        );
        // (The Deployment's replacement pod may be up by now: the room goes to a node
        // that is not draining, one for both participants.)
        let new_hosts: std::collections::BTreeSet<_> = newcomers.iter().map(remote).collect();
        ensure!(
            new_hosts.len() == 1 && !new_hosts.contains(&Some(host_ip.clone())),
            "the new room went to {new_hosts:?}; the draining host is {host_ip}, the other pod {other_ip}"
        );
        for s in newcomers {
            let (status, _) = s.close().await?;
            ensure!(status == 200, "leave the new room: {status}");
        }
        // The draining host's sessions end with its drain, or are left now.
        for s in subscribers.into_iter().chain(sessions).chain([late]) {
            s.close().await?;
        }
        tenants.delete(&run, &Default::default()).await?;
        wait_gone(&tenants, &run, Duration::from_secs(120)).await
    })
    .await
}
