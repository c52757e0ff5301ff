//! The media node over real loopback UDP and HTTP, against str0m clients.

mod support;

use std::time::Duration;

use sanctum_media_client::{ClientError, Kind};
use sanctum_media_node::token::{self, Grant, RoleClaim};
use support::{Node, NodeOptions, TENANT, eventually, keypair};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publisher_reaches_every_subscriber() {
    let node = Node::start(NodeOptions::default()).await;
    let mut subs = Vec::new();
    for i in 0..3 {
        subs.push(
            node.join(
                Kind::Subscribe,
                "room-1",
                &format!("u-sub-{i}"),
                RoleClaim::Observer,
            )
            .await
            .expect("subscribe"),
        );
    }
    let publisher = node
        .join(Kind::Publish, "room-1", "u-pub", RoleClaim::Host)
        .await
        .expect("publish");
    let all_receive = eventually(Duration::from_secs(15), || {
        subs.iter().all(|s| s.stats().frames.len() >= 60)
    })
    .await;
    assert!(
        all_receive,
        "every subscriber receives video: {:?}",
        subs.iter()
            .map(|s| s.stats().frames.len())
            .collect::<Vec<_>>()
    );
    assert_eq!(node.metric("sanctum_media_peers ").await, 4.0);
    assert_eq!(node.metric("sanctum_media_rooms ").await, 1.0);
    assert!(
        node.metric("sanctum_media_packets_total{direction=\"out\"}")
            .await
            > 100.0
    );
    assert!(
        node.metric("sanctum_media_forward_latency_seconds_count")
            .await
            > 100.0
    );

    let (status, sent) = publisher.close().await.expect("leave");
    assert_eq!(status, 200);
    for s in subs {
        let (status, got) = s.close().await.expect("leave");
        assert_eq!(status, 200);
        assert_eq!(got.corrupt, 0, "no frame arrives altered");
        assert!(got.audio_received > 0, "audio arrives too");
        let delivered = got.frames.len() as f64 / sent.video_sent as f64;
        assert!(
            delivered > 0.8,
            "delivered {} of {} frames",
            got.frames.len(),
            sent.video_sent
        );
    }
    assert!(
        eventually(Duration::from_secs(5), || node
            .running
            .media
            .sessions
            .live()
            == 0)
        .await,
        "every session is gone"
    );
}

fn refused(r: Result<sanctum_media_client::Session, ClientError>) -> (u16, Option<String>) {
    match r {
        Err(ClientError::Refused {
            status, challenge, ..
        }) => (status, challenge),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("the request was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_cross_tenant_tokens_are_refused() {
    let node = Node::start(NodeOptions::default()).await;
    let (other_private, _) = keypair();
    let grant = |tenant: &str| Grant {
        tenant: tenant.into(),
        room: "room-1".into(),
        user: "u-1".into(),
        role: RoleClaim::Participant,
        ttl: Duration::from_secs(300),
    };
    let connect = |token: String| {
        let opts = node.options("room-1", token);
        let http = node.http.clone();
        async move { sanctum_media_client::connect(&http, Kind::Publish, &opts).await }
    };

    // Signed by another key (another tenant's, or a forger's): it names a key the node
    // does not hold.
    let forged = token::mint(&other_private, &grant(TENANT)).expect("mint");
    let (status, challenge) = refused(connect(forged).await);
    assert_eq!(status, 401);
    assert!(challenge.expect("challenge").contains("invalid_token"));

    // Signed by this tenant's key but for another tenant.
    let cross = token::mint(&node.private_pem, &grant("clinic-b")).expect("mint");
    assert_eq!(refused(connect(cross).await).0, 401);

    // Expired an hour ago.
    let expired =
        token::mint_at(&node.private_pem, &grant(TENANT), token::unix_now() - 3600).expect("mint");
    assert_eq!(refused(connect(expired).await).0, 401);

    // No token at all.
    assert_eq!(refused(connect(String::new()).await).0, 401);

    // Valid token, other room: 403.
    let other_room = node.token("room-2", "u-1", RoleClaim::Participant);
    let (status, challenge) = refused(connect(other_room).await);
    assert_eq!(status, 403);
    assert!(challenge.expect("challenge").contains("insufficient_scope"));

    // An observer may subscribe but not publish.
    let observer = node.token("room-1", "u-1", RoleClaim::Observer);
    assert_eq!(refused(connect(observer).await).0, 403);
    node.join(Kind::Subscribe, "room-1", "u-1", RoleClaim::Observer)
        .await
        .expect("observers subscribe");

    for (reason, n) in [
        ("unknown-key", 1.0),
        ("wrong-tenant", 1.0),
        ("expired", 1.0),
        ("missing", 1.0),
        ("wrong-room", 1.0),
        ("role-forbidden", 1.0),
    ] {
        let line = format!("sanctum_media_auth_failures_total{{reason=\"{reason}\"}}");
        assert_eq!(node.metric(&line).await, n, "{reason}");
    }
    assert_eq!(
        node.running.media.sessions.live(),
        1,
        "refused offers leave nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_closed_and_told_why() {
    let node = Node::start(NodeOptions {
        idle: Duration::from_secs(2),
        ..NodeOptions::default()
    })
    .await;
    // Alone in its room, a subscriber receives nothing: idle.
    let sub = node
        .join(Kind::Subscribe, "room-idle", "u-1", RoleClaim::Participant)
        .await
        .expect("subscribe");
    assert!(eventually(Duration::from_secs(5), || sub.stats().connected).await);
    assert!(
        eventually(Duration::from_secs(8), || sub.stats().closed_by_node).await,
        "the node closed the session (DTLS close_notify)"
    );
    let (status, body) = sub.state().await.expect("state");
    assert_eq!(status, 200);
    assert!(body.contains("\"idle-timeout\""), "{body}");
    assert_eq!(
        node.metric("sanctum_media_sessions_ended_total{reason=\"idle-timeout\"}")
            .await,
        1.0
    );
    let (status, _) = sub.close().await.expect("delete");
    assert_eq!(status, 404, "an ended session cannot be deleted again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_resources_follow_rfc_9725() {
    let node = Node::start(NodeOptions::default()).await;
    let publisher = node
        .join(Kind::Publish, "room-1", "u-pub", RoleClaim::Participant)
        .await
        .expect("publish");
    let token = node.token("room-1", "u-pub", RoleClaim::Participant);
    let patch = |if_match: Option<&str>, body: &str| {
        let mut req = node
            .http
            .patch(&publisher.resource)
            .bearer_auth(&token)
            .header("content-type", "application/trickle-ice-sdpfrag")
            .body(body.to_string());
        if let Some(m) = if_match {
            req = req.header("if-match", m);
        }
        async move { req.send().await.expect("patch").status().as_u16() }
    };
    let frag = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef01234567\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n";
    assert_eq!(patch(Some(&publisher.etag), frag).await, 204, "trickle");
    assert_eq!(patch(Some("\"stale\""), frag).await, 412, "wrong ETag");
    assert_eq!(patch(Some("*"), frag).await, 422, "ICE restart");
    assert_eq!(patch(None, frag).await, 428, "no If-Match");

    // Another participant cannot end it; a host of the room can.
    let other = node.token("room-1", "u-other", RoleClaim::Participant);
    let delete = |token: String| {
        let req = node.http.delete(&publisher.resource).bearer_auth(token);
        async move { req.send().await.expect("delete").status().as_u16() }
    };
    assert_eq!(delete(other).await, 403);
    let host = node.token("room-1", "u-host", RoleClaim::Host);
    assert_eq!(delete(host.clone()).await, 200);
    assert_eq!(delete(host).await, 404);
    let (_, body) = publisher.state().await.expect("state");
    assert!(body.contains("ended-by-host"), "{body}");

    // Not SDP, wrong content type, unknown session.
    let post = |ct: &str, body: &str| {
        let req = node
            .http
            .post(format!("{}/whip/room-1", node.base))
            .bearer_auth(node.token("room-1", "u-x", RoleClaim::Participant))
            .header("content-type", ct.to_string())
            .body(body.to_string());
        async move { req.send().await.expect("post").status().as_u16() }
    };
    assert_eq!(post("application/sdp", "v=0\r\nnonsense").await, 400);
    assert_eq!(post("text/plain", "v=0").await, 415);
    let missing = node
        .http
        .get(format!("{}/whip/room-1/00000000", node.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_over_tls_and_a_graceful_drain() {
    let node = Node::start(NodeOptions {
        tls: true,
        drain: Duration::from_secs(1),
        ..NodeOptions::default()
    })
    .await;
    assert!(node.base.starts_with("https://"));
    let sub = node
        .join(Kind::Subscribe, "room-1", "u-sub", RoleClaim::Participant)
        .await
        .expect("subscribe over HTTPS");
    let publisher = node
        .join(Kind::Publish, "room-1", "u-pub", RoleClaim::Participant)
        .await
        .expect("publish over HTTPS");
    assert!(eventually(Duration::from_secs(10), || sub.stats().frames.len() > 10).await);
    let metrics_addr = node.running.metrics_addr;
    let Node { running, .. } = node;
    let shutdown = tokio::spawn(running.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = reqwest::get(format!("http://{metrics_addr}/readyz"))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_eq!(ready, 503, "a draining node is not ready");
    shutdown.await.expect("shutdown");
    assert!(
        eventually(Duration::from_secs(5), || sub.stats().closed_by_node
            && publisher.stats().closed_by_node)
        .await,
        "sessions are ended with a goodbye at shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_removed_by_a_host_cannot_rejoin_with_the_same_token() {
    let node = Node::start(NodeOptions::default()).await;
    let kicked_token = node.token("room-k", "u-kicked", RoleClaim::Participant);
    let kicked = sanctum_media_client::connect(
        &node.http,
        Kind::Subscribe,
        &node.options("room-k", kicked_token.clone()),
    )
    .await
    .expect("subscribe");
    let host = node.token("room-k", "u-host", RoleClaim::Host);
    let ended = node
        .http
        .delete(&kicked.resource)
        .bearer_auth(&host)
        .send()
        .await
        .expect("delete");
    assert_eq!(ended.status().as_u16(), 200);
    let (_, body) = kicked.state().await.expect("its session can still be read");
    assert!(body.contains("ended-by-host"), "{body}");
    // The same token opens nothing now; a new token (the application's decision) does.
    let (status, challenge) = refused(
        sanctum_media_client::connect(
            &node.http,
            Kind::Subscribe,
            &node.options("room-k", kicked_token),
        )
        .await,
    );
    assert_eq!(status, 401);
    assert!(challenge.is_some_and(|c| c.contains("revoked")));
    let fresh = node.token("room-k", "u-kicked", RoleClaim::Participant);
    assert!(
        sanctum_media_client::connect(&node.http, Kind::Subscribe, &node.options("room-k", fresh))
            .await
            .is_ok()
    );
    assert_eq!(
        node.metric("sanctum_media_auth_failures_total{reason=\"revoked\"}")
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_capped_per_token_room_and_node() {
    let node = Node::start(NodeOptions {
        limits: sanctum_media_node::state::Limits {
            node: 3,
            room: 2,
            token: 1,
        },
        ..NodeOptions::default()
    })
    .await;
    let connect = |room: &str, token: String| {
        let opts = node.options(room, token);
        let http = node.http.clone();
        async move { sanctum_media_client::connect(&http, Kind::Subscribe, &opts).await }
    };
    let once = node.token("room-a", "u-1", RoleClaim::Participant);
    let _first = connect("room-a", once.clone())
        .await
        .expect("first session");
    let (status, _) = refused(connect("room-a", once).await);
    assert_eq!(status, 429, "one token, one live session");
    let _second = connect(
        "room-a",
        node.token("room-a", "u-2", RoleClaim::Participant),
    )
    .await
    .expect("second session in the room");
    let (status, _) = refused(
        connect(
            "room-a",
            node.token("room-a", "u-3", RoleClaim::Participant),
        )
        .await,
    );
    assert_eq!(status, 503, "the room is full");
    let _third = connect(
        "room-b",
        node.token("room-b", "u-4", RoleClaim::Participant),
    )
    .await
    .expect("another room");
    let (status, _) = refused(
        connect(
            "room-c",
            node.token("room-c", "u-5", RoleClaim::Participant),
        )
        .await,
    );
    assert_eq!(status, 503, "the node is full");
    for reason in ["token-sessions", "room-full", "node-full"] {
        assert_eq!(
            node.metric(&format!(
                "sanctum_media_auth_failures_total{{reason=\"{reason}\"}}"
            ))
            .await,
            1.0,
            "{reason}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_outlives_its_token_and_can_still_be_read_and_left() {
    let node = Node::start(NodeOptions::default()).await;
    // Valid for about two more seconds (expiry plus the verifier's leeway).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let short = |user: &str| {
        let ttl = 300 - token::LEEWAY_SECONDS + 2;
        token::mint_at(
            &node.private_pem,
            &Grant {
                tenant: TENANT.into(),
                room: "room-1".into(),
                user: user.into(),
                role: RoleClaim::Participant,
                ttl: Duration::from_secs(ttl),
            },
            now - 300,
        )
        .expect("mint")
    };
    let token = short("u-visit");
    let other = short("u-visit");
    let session = sanctum_media_client::connect(
        &node.http,
        Kind::Publish,
        &node.options("room-1", token.clone()),
    )
    .await
    .expect("the token is still valid for the offer");
    tokio::time::sleep(Duration::from_secs(4)).await;

    let get = |token: &str| {
        let req = node.http.get(&session.resource).bearer_auth(token);
        async move {
            let r = req.send().await.expect("get");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    let (status, body) = get(&token).await;
    assert_eq!((status, body.contains("live")), (200, true), "{body}");
    assert_eq!(
        get(&other).await.0,
        401,
        "another expired token of the same user reaches nothing"
    );
    let again = sanctum_media_client::connect(
        &node.http,
        Kind::Publish,
        &node.options("room-1", token.clone()),
    )
    .await;
    assert_eq!(
        refused(again).0,
        401,
        "an expired token opens no new session"
    );
    let left = node
        .http
        .delete(&session.resource)
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(left.status().as_u16(), 200, "the visit can still be left");
    session.abandon().await;
}
