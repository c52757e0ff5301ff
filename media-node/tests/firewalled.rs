//! For clients on networks that refuse UDP: ICE-TCP (RFC 6544, RFC 4571 framing) through
//! the node's real TCP listener against str0m clients that use only a TCP connection for
//! media, and the TURN credentials answers carry (RFC 9725 §4.6).

mod support;

use std::time::Duration;

use sanctum_media_client::{Kind, Transport};
use sanctum_media_node::token::RoleClaim;
use support::{Node, NodeOptions, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_udp_participants_share_a_room() {
    let node = Node::start(NodeOptions::default()).await;
    let tcp_addr = node.running.media_tcp_addr.expect("ICE-TCP listener");
    let connect = |kind, user: &str, transport| {
        let mut opts = node.options("room-1", node.token("room-1", user, RoleClaim::Host));
        opts.transport = transport;
        let http = node.http.clone();
        async move { sanctum_media_client::connect(&http, kind, &opts).await }
    };
    let tcp_sub = connect(Kind::Subscribe, "u-tcp-sub", Transport::Tcp)
        .await
        .expect("subscribe over TCP");
    let udp_sub = connect(Kind::Subscribe, "u-udp-sub", Transport::Udp)
        .await
        .expect("subscribe over UDP");
    let publisher = connect(Kind::Publish, "u-tcp-pub", Transport::Tcp)
        .await
        .expect("publish over TCP");

    let flowing = eventually(Duration::from_secs(15), || {
        tcp_sub.stats().frames.len() >= 60 && udp_sub.stats().frames.len() >= 60
    })
    .await;
    assert!(
        flowing,
        "video from a TCP publisher reaches TCP and UDP subscribers: tcp {} udp {}",
        tcp_sub.stats().frames.len(),
        udp_sub.stats().frames.len()
    );
    assert_eq!(
        tcp_sub.stats().remote,
        Some(tcp_addr),
        "the TCP subscriber's media came over the TCP connection"
    );
    assert_eq!(udp_sub.stats().remote, Some(node.running.media_addr));
    assert_eq!(node.metric("sanctum_media_tcp_connections ").await, 2.0);

    let (_, sent) = publisher.close().await.expect("leave");
    let (_, got) = tcp_sub.close().await.expect("leave");
    assert_eq!(got.corrupt, 0, "no frame arrives altered over TCP");
    assert!(got.audio_received > 0, "audio arrives over TCP too");
    assert!(
        got.frames.len() as f64 / sent.video_sent as f64 > 0.9,
        "delivered {} of {} frames over TCP",
        got.frames.len(),
        sent.video_sent
    );
    udp_sub.close().await.expect("leave");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_no_session_claims_is_closed() {
    let node = Node::start(NodeOptions::default()).await;
    let tcp_addr = node.running.media_tcp_addr.expect("ICE-TCP listener");

    // A STUN binding request whose username names no session (RFC 5389 header with the
    // magic cookie, one USERNAME attribute), then a frame of noise on a second connection.
    let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[7u8; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x08]);
    stun.extend_from_slice(b"nobo:dy!");
    let noise = vec![0xde; 40];
    for (i, payload) in [stun, noise].into_iter().enumerate() {
        let mut conn = tokio::net::TcpStream::connect(tcp_addr)
            .await
            .expect("connect");
        let mut framed = (payload.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&payload);
        conn.write_all(&framed).await.expect("write");
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest))
            .await
            .expect("the node closes the connection");
        assert!(
            read.is_err() || rest.is_empty(),
            "the node answered an unclaimed frame"
        );
        let refused = node.metric("sanctum_media_tcp_refused_total ").await;
        assert_eq!(refused, (i + 1) as f64, "refused connections are counted");
    }
    let mut open = f64::NAN;
    for _ in 0..50 {
        open = node.metric("sanctum_media_tcp_connections ").await;
        if open == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0.0, "no refused connection stays open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_a_turn_credential_of_their_own() {
    let dir = tempfile::tempdir().expect("dir");
    let secret_file = dir.path().join("turn-secret");
    std::fs::write(&secret_file, "shared-with-coturn").expect("write");
    let node = Node::start(NodeOptions {
        turn: Some(sanctum_media_node::turn::TurnConfig {
            urls: vec!["turn:turn.clinic.example:3478?transport=tcp".into()],
            secret_file,
            ttl: Duration::from_secs(900),
        }),
        ..NodeOptions::default()
    })
    .await;
    let mut usernames = Vec::new();
    for user in ["u-1", "u-2"] {
        let session = node
            .join(Kind::Subscribe, "room-1", user, RoleClaim::Participant)
            .await
            .expect("subscribe");
        assert_eq!(session.links.len(), 1, "one Link per TURN URL");
        let link = &session.links[0];
        assert!(
            link.starts_with("<turn:turn.clinic.example:3478?transport=tcp>; rel=\"ice-server\""),
            "{link}"
        );
        let field = |name: &str| {
            link.split("; ")
                .find_map(|p| p.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_else(|| panic!("{name} in {link}"))
        };
        let username = field("username");
        let expiry: u64 = username
            .split(':')
            .next()
            .and_then(|e| e.parse().ok())
            .expect("expiry");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        assert!(
            (now + 890..=now + 910).contains(&expiry),
            "the credential expires after its TTL: {expiry} vs now {now}"
        );
        assert_eq!(
            field("credential"),
            sanctum_media_node::turn::credential(b"shared-with-coturn", &username),
            "coturn's use-auth-secret would accept the password"
        );
        usernames.push(username);
        session.close().await.expect("leave");
    }
    assert_ne!(
        usernames[0], usernames[1],
        "each session has its own credential"
    );
}
