//! Logs carry the session log's opaque ids and nothing else about a participant: no token,
//! no SDP, no ICE credential or candidate, no client address, no key material.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sanctum_media_client::Kind;
use sanctum_media_node::token::RoleClaim;
use support::{Node, NodeOptions, eventually};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_logs_ids_and_no_personal_or_secret_data() {
    let capture = Capture::default();
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("debug"))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(capture.clone()),
        )
        .init();

    let node = Node::start(NodeOptions::default()).await;
    let pub_token = node.token("room-7", "u-pub", RoleClaim::Host);
    let sub_token = node.token("room-7", "u-sub", RoleClaim::Observer);
    let opts = |token: &str| node.options("room-7", token.to_string());
    let sub = sanctum_media_client::connect(&node.http, Kind::Subscribe, &opts(&sub_token))
        .await
        .expect("subscribe");
    let publisher = sanctum_media_client::connect(&node.http, Kind::Publish, &opts(&pub_token))
        .await
        .expect("publish");
    assert!(eventually(Duration::from_secs(10), || sub.stats().frames.len() > 20).await);
    // A refused token and a trickled candidate go through the same logs.
    let bad = format!("{sub_token}x");
    let _ = sanctum_media_client::connect(&node.http, Kind::Publish, &opts(&bad)).await;
    let client_addrs = [sub.local_addr.to_string(), publisher.local_addr.to_string()];
    publisher.close().await.expect("leave");
    sub.close().await.expect("leave");
    assert!(
        eventually(Duration::from_secs(5), || node
            .running
            .media
            .sessions
            .live()
            == 0)
        .await
    );
    let master = std::fs::read(node.dir.path().join("master.key")).expect("master key");

    let logs = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf-8");
    for event in ["join", "publish", "subscribe", "leave"] {
        assert!(
            logs.contains(&format!("\"event\":\"{event}\"")),
            "the session log has {event}"
        );
    }
    assert!(logs.contains("\"user\":\"u-pub\"") && logs.contains("\"role\":\"host\""));
    assert!(
        logs.contains("\"target\":\"sanctum::auth\""),
        "refusals are logged"
    );
    let master_hex: String = master.iter().map(|b| format!("{b:02x}")).collect();
    let forbidden = [
        pub_token.as_str(),
        sub_token.as_str(),
        "v=0",
        "a=candidate",
        "ice-pwd",
        "fingerprint:sha-256",
        client_addrs[0].as_str(),
        client_addrs[1].as_str(),
        master_hex.as_str(),
    ];
    for f in forbidden {
        let offending: Vec<&str> = logs.lines().filter(|l| l.contains(f)).take(3).collect();
        assert!(
            offending.is_empty(),
            "the logs contain {f:?}: {offending:#?}"
        );
    }
}
