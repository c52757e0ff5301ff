//! Two media nodes of one region behind one address each, as a Service would balance
//! requests over them: the participants of a room meet on one node whichever node their
//! requests reach.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use sanctum_media_client::{Kind, Session};
use sanctum_media_node::token::RoleClaim;
use support::{LOOPBACK, Node, NodeOptions, eventually, free_port, keypair, tls_identity};

async fn region() -> (Node, Node) {
    let ports = [free_port(), free_port()];
    let peers: Vec<SocketAddr> = ports
        .iter()
        .map(|p| SocketAddr::new(LOOPBACK, *p))
        .collect();
    let join_key = keypair();
    let tls = tls_identity();
    let node = |port| {
        Node::start(NodeOptions {
            port,
            peers: Some(peers.clone()),
            join_key: Some(join_key.clone()),
            tls: true,
            tls_identity: Some(tls.clone()),
            ..NodeOptions::default()
        })
    };
    (node(ports[0]).await, node(ports[1]).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_participants_reaching_either_node_meet_in_one_room() {
    let (a, b) = region().await;
    let nodes = [&a, &b];
    let mut publishers: Vec<Session> = Vec::new();
    let mut subscribers: Vec<Session> = Vec::new();
    for i in 0..6 {
        // The first requests alternate between the nodes, as a load balancer sends them.
        let node = nodes[i % 2];
        let user = format!("u-{i}");
        let token = node.token("visit-1", &user, RoleClaim::Participant);
        let publish = node.options("visit-1", token.clone());
        publishers.push(
            sanctum_media_client::connect(&node.http, Kind::Publish, &publish)
                .await
                .expect("publish"),
        );
        let mut subscribe = node.options("visit-1", token);
        subscribe.video_slots = 5;
        subscribers.push(
            sanctum_media_client::connect(&node.http, Kind::Subscribe, &subscribe)
                .await
                .expect("subscribe"),
        );
    }
    let (on_a, on_b) = (
        a.running.media.sessions.live(),
        b.running.media.sessions.live(),
    );
    assert!(
        (on_a, on_b) == (12, 0) || (on_a, on_b) == (0, 12),
        "every session on one node: {on_a} on a, {on_b} on b"
    );
    // Each participant sees the other five (not itself).
    let everyone_sees_five = eventually(Duration::from_secs(20), || {
        subscribers.iter().all(|s| {
            let stats = s.stats();
            stats.video_by_mid.len() == 5 && stats.video_by_mid.values().all(|n| *n >= 30)
        })
    })
    .await;
    assert!(
        everyone_sees_five,
        "frames per video slot: {:?}",
        subscribers
            .iter()
            .map(|s| s.stats().video_by_mid)
            .collect::<Vec<_>>()
    );
    // Session resources work through either node: state and leave.
    for s in subscribers.iter().chain(publishers.iter()) {
        let (status, _) = s.state().await.expect("state");
        assert_eq!(status, 200);
    }
    for s in subscribers.into_iter().chain(publishers) {
        let (status, _) = s.close().await.expect("leave");
        assert_eq!(status, 200);
    }
    assert_eq!(
        a.running.media.sessions.live() + b.running.media.sessions.live(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_host_finishes_its_room_and_new_rooms_go_to_the_other_node() {
    let (a, b) = region().await;
    let join = |node: &Node, room: &str, user: &str| {
        let opts = node.options(room, node.token(room, user, RoleClaim::Participant));
        let http = node.http.clone();
        async move { sanctum_media_client::connect(&http, Kind::Subscribe, &opts).await }
    };
    let first = join(&a, "visit-2", "u-1").await.expect("join");
    let host_is_a = a.running.media.sessions.in_room("visit-2") == 1;
    let (host, other) = if host_is_a { (&a, &b) } else { (&b, &a) };
    host.running.start_drain();
    // A joiner of the live room still reaches it, through either node.
    let _second = join(other, "visit-2", "u-2")
        .await
        .expect("join the draining host's room");
    assert_eq!(host.running.media.sessions.in_room("visit-2"), 2);
    // A new room goes to the node that is not draining.
    let _third = join(host, "visit-3", "u-3").await.expect("a new room");
    assert_eq!(other.running.media.sessions.in_room("visit-3"), 1);
    assert_eq!(host.running.media.sessions.in_room("visit-3"), 0);
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused_by_the_node_it_reaches_without_asking_the_others() {
    let (a, b) = region().await;
    let (other_private, _) = keypair();
    let forged = sanctum_media_node::token::mint(
        &other_private,
        &sanctum_media_node::token::Grant {
            tenant: support::TENANT.into(),
            room: "visit-4".into(),
            user: "u-x".into(),
            role: RoleClaim::Participant,
            ttl: Duration::from_secs(60),
        },
    )
    .expect("mint");
    let refused =
        sanctum_media_client::connect(&a.http, Kind::Subscribe, &a.options("visit-4", forged))
            .await;
    assert!(matches!(
        refused,
        Err(sanctum_media_client::ClientError::Refused { status: 401, .. })
    ));
    // Only the node reached saw the request: the other one counted no refusal.
    assert_eq!(
        b.metric("sanctum_media_auth_failures_total{reason=\"unknown-key\"}")
            .await,
        0.0
    );
    assert_eq!(
        a.metric("sanctum_media_auth_failures_total{reason=\"unknown-key\"}")
            .await,
        1.0
    );
}
