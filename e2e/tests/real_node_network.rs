//! NetworkPolicies are enforced on the data path, not only present as objects: probe pods
//! on the real node (kube-router filters their packets) try the connections a tenant's
//! policies allow and forbid. Every probe shows an allowed and a refused connection, so
//! a probe that can reach nothing (or everything) fails the test.
//!
//! - From tenant B's namespace, tenant A's signaling (TCP 8443) and media (an ICE check
//!   on UDP 10000) are unreachable; B's own DNS works.
//! - From the namespace A names in `signalingFrom`, A's signaling is reachable; A's media
//!   is not (that namespace is not in `mediaCIDRs`).
//! - From this machine (in A's `mediaCIDRs`), an ICE check of A's media is answered.
//! - From A's namespace, DNS works, TLS to the AWS emulator (in `egressCIDRs`) connects,
//!   and TLS to an address outside `egressCIDRs` does not, though that address accepts
//!   connections from a namespace without policies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use sanctum_api::VideoTenant;
use sanctum_e2e::node::{
    MEDIA_PODS, Reach, RealNode, create_tenant, pin_to_real_node, port_forward, probe, wait_running,
};
use sanctum_e2e::{
    Cluster, Operator, example_tenant, unique, wait_condition, wait_gone, with_logs,
};
use sanctum_media_core::str0m::media::{Direction, MediaKind};
use sanctum_media_core::str0m::{Candidate, Rtc};

#[tokio::test]
async fn tenant_network_policies_are_enforced_by_the_node() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let node = RealNode::from_env()?;
    let run = unique("netpol");
    let op = Operator::start(&run).await?;
    with_logs(&op, || body(&cluster, &node, &run)).await
}

async fn body(cluster: &Cluster, node: &RealNode, run: &str) -> Result<()> {
    let client = &cluster.client;
    let (a, b, ingress) = (
        format!("{run}-a"),
        format!("{run}-b"),
        format!("{run}-ingress"),
    );
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ingress}}))?,
        )
        .await?;
    // A listener outside every egressCIDRs (the machine's second address, port 443).
    let outside = tokio::net::TcpListener::bind((node.outside_ip, 443)).await?;
    let outside_task = tokio::spawn(async move {
        while let Ok((conn, _)) = outside.accept().await {
            drop(conn);
        }
    });

    let tenants = Api::<VideoTenant>::all(client.clone());
    let mut tenant_a = example_tenant(&a, run)?;
    tenant_a.spec.media.regions.truncate(1);
    tenant_a.spec.media.regions[0].replicas = 1;
    tenant_a.spec.network.signaling_from = vec![ingress.clone()];
    tenant_a.spec.network.media_cidrs = vec![format!("{}/32", node.host_ip)];
    tenant_a.spec.network.egress_cidrs = vec![format!("{}/32", node.host_ip)];
    pin_to_real_node(&mut tenant_a);
    let mut tenant_b = example_tenant(&b, run)?;
    tenant_b.spec.media.regions.truncate(1);
    tenant_b.spec.media.regions[0].replicas = 0;
    tenant_b.spec.network.signaling_from = vec![];
    tenant_b.spec.network.media_cidrs = vec![];
    tenant_b.spec.network.egress_cidrs = vec![];
    pin_to_real_node(&mut tenant_b);
    let ns_a = create_tenant(client, &tenant_a).await?;
    tenants.create(&PostParams::default(), &tenant_b).await?;
    let ns_b = format!("vt-{b}");
    wait_condition(&tenants, &a, "Ready", "True", Duration::from_secs(180)).await?;
    wait_condition(&tenants, &b, "Ready", "True", Duration::from_secs(120)).await?;
    let pods = wait_running(client, &ns_a, MEDIA_PODS, 1, Duration::from_secs(60)).await?;
    let media_pod = &pods[0];
    let pod_ip = media_pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .context("media pod IP")?;

    // A WebRTC session on A's node, so that an ICE check with its credentials is answered
    // wherever the node can be reached.
    let forward = port_forward(&ns_a, &media_pod.name_any(), 8443).await?;
    let ice = open_session(client, &ns_a, &a, forward.local, node).await?;
    let media = SocketAddr::new(pod_ip.parse()?, 10000);
    let stun = format!("stun:{media}:{}:{}", ice.username, ice.password);
    let signaling = format!("tcp:{pod_ip}:8443");
    let dns = "dns:kubernetes.default.svc.cluster.local".to_string();
    let aws = format!("tcp:{}:443", node.host_ip);
    let elsewhere = format!("tcp:{}:443", node.outside_ip);

    // This machine is in A's mediaCIDRs: its ICE check is answered (so the session's
    // credentials work), and the same check from pods below is what the policies decide.
    let from_host = ice_check_from_host(media, &ice).await?;
    ensure!(
        from_host.reachable,
        "the ICE check from this machine (in mediaCIDRs) got no answer: {}",
        from_host.detail
    );

    let labels = BTreeMap::from([("sanctum.dev/e2e-probe".to_string(), run.to_string())]);
    let from_b = probe(
        client,
        &ns_b,
        "probe-b",
        &labels,
        (&dns, true),
        &[signaling.clone(), stun.clone(), dns.clone()],
    )
    .await?;
    expect(&from_b, &signaling, false, "tenant B reaches A's signaling")?;
    expect(&from_b, &stun, false, "tenant B reaches A's media")?;
    expect(&from_b, &dns, true, "tenant B resolves names")?;

    let from_ingress = probe(
        client,
        &ingress,
        "probe-ingress",
        &labels,
        (&signaling, true),
        &[signaling.clone(), stun.clone(), elsewhere.clone()],
    )
    .await?;
    expect(
        &from_ingress,
        &signaling,
        true,
        "the signalingFrom namespace reaches A's signaling",
    )?;
    expect(
        &from_ingress,
        &stun,
        false,
        "a namespace outside mediaCIDRs reaches A's media",
    )?;
    expect(
        &from_ingress,
        &elsewhere,
        true,
        "the outside listener accepts (control)",
    )?;

    let from_a = probe(
        client,
        &ns_a,
        "probe-a",
        &labels,
        (&elsewhere, false),
        &[dns.clone(), aws.clone(), elsewhere.clone()],
    )
    .await?;
    expect(&from_a, &dns, true, "tenant A resolves names")?;
    expect(
        &from_a,
        &aws,
        true,
        "tenant A reaches the AWS endpoint in egressCIDRs",
    )?;
    expect(
        &from_a,
        &elsewhere,
        false,
        "tenant A reaches an address outside egressCIDRs",
    )?;

    outside_task.abort();
    drop(forward);
    tenants.delete(&a, &Default::default()).await?;
    tenants.delete(&b, &Default::default()).await?;
    namespaces
        .delete(&ingress, &DeleteParams::background())
        .await?;
    wait_gone(&tenants, &a, Duration::from_secs(120)).await?;
    wait_gone(&tenants, &b, Duration::from_secs(120)).await
}

fn expect(found: &[Reach], check: &str, reachable: bool, what: &str) -> Result<()> {
    let r = found
        .iter()
        .find(|r| r.check == check)
        .with_context(|| format!("no result for {check}"))?;
    if r.reachable != reachable {
        bail!(
            "{what}: expected {}, the probe found {} ({})",
            if reachable { "yes" } else { "no" },
            if r.reachable { "yes" } else { "no" },
            r.detail
        );
    }
    Ok(())
}

/// ICE credentials of a session on the node: checks must name `username` and be signed
/// with `password` (RFC 8445 section 7.2.2).
struct Ice {
    username: String,
    password: String,
}

/// Offers a session over WHIP (through the port-forward) and keeps the credentials of
/// the node's answer; nothing else of the session is ever used.
async fn open_session(
    client: &kube::Client,
    namespace: &str,
    tenant: &str,
    signaling: SocketAddr,
    node: &RealNode,
) -> Result<Ice> {
    let token =
        sanctum_e2e::node::join_token(client, namespace, tenant, "room-probe", "u-probe", "host")
            .await?;
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(Candidate::host(
        SocketAddr::new(node.host_ip.into(), 9),
        "udp",
    )?);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, _pending) = api.apply().context("an offer")?;
    let offer = offer.to_sdp_string();
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?;
    let response = http
        .post(format!("https://{signaling}/whip/room-probe"))
        .bearer_auth(token)
        .header("content-type", "application/sdp")
        .body(offer.clone())
        .send()
        .await?;
    ensure!(
        response.status().as_u16() == 201,
        "WHIP answered {}",
        response.status()
    );
    let answer = response.text().await?;
    let attr = |sdp: &str, name: &str| {
        sdp.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(&format!("a={name}:"))
                    .map(str::to_string)
            })
            .with_context(|| format!("no {name} in the SDP"))
    };
    Ok(Ice {
        username: format!(
            "{}:{}",
            attr(&answer, "ice-ufrag")?,
            attr(&offer, "ice-ufrag")?
        ),
        password: attr(&answer, "ice-pwd")?,
    })
}

/// The same ICE check the probe sends, from this machine.
async fn ice_check_from_host(media: SocketAddr, ice: &Ice) -> Result<Reach> {
    let probe = std::env::var("SANCTUM_E2E_NETPROBE_BIN").unwrap_or_else(|_| {
        sanctum_e2e::workspace_binary("sanctum-netprobe")
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    });
    let out = tokio::process::Command::new(probe)
        .arg(format!("stun:{media}:{}:{}", ice.username, ice.password))
        .output()
        .await?;
    let found: Vec<Reach> = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("probe output: {}", String::from_utf8_lossy(&out.stdout)))?;
    found.into_iter().next().context("one result")
}
