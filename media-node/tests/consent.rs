//! Recordings that wait for the room's host (`awaitHost`, the tenant's
//! `spec.recording.hostConfirms`): nothing records until the host of the room answers on
//! its own publishing session; every participant sees that a recording waits; nobody else
//! can answer, and a declined request is reported failed to the operator.

mod support;

use reqwest::{Method, StatusCode};
use sanctum_api::control::{self, HOST_DECLINED};
use sanctum_media_client::Kind;
use sanctum_media_node::token::RoleClaim;
use support::{Node, NodeOptions};

const ROOM: &str = "room-consent";

fn start(id: &str) -> Vec<u8> {
    serde_json::json!({
        "room": ROOM,
        "bucket": "clinic-a-recordings",
        "key": format!("recordings/{id}.sealed"),
        "awaitHost": true,
    })
    .to_string()
    .into_bytes()
}

/// The operator's start of recording `id` of the room, asking the node to wait for the host.
async fn ask(node: &Node, id: &str) -> (StatusCode, serde_json::Value) {
    node.control(Method::PUT, &control::recording_path(id), Some(&start(id)))
        .await
}

/// What the node reports about recording `id`.
async fn report(node: &Node, id: &str) -> serde_json::Value {
    node.control(Method::GET, &control::recording_path(id), None)
        .await
        .1
}

/// POSTs a decision on session `resource` with `token`: status and body.
async fn answer(node: &Node, resource: &str, token: &str, body: &str) -> (u16, String) {
    let r = node
        .http
        .post(format!("{resource}/consent"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("consent");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// What a participant's session resource says about the room's recording.
async fn recording_seen(node: &Node, resource: &str, token: &str) -> String {
    let r = node
        .http
        .get(resource)
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    let body: serde_json::Value = r.json().await.expect("json");
    body["recording"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_waits_for_the_host_whom_nobody_else_can_answer_for() {
    // Uploads go to a loopback port that takes connections and never answers: a granted
    // recording starts and stays recording, and nothing leaves the machine.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let node = Node::start(NodeOptions {
        s3_endpoint: Some(format!("http://{}", silent.local_addr().expect("addr"))),
        ..NodeOptions::default()
    })
    .await;
    let host_token = node.token(ROOM, "u-host", RoleClaim::Host);
    let patient_token = node.token(ROOM, "u-patient", RoleClaim::Participant);
    let other_host = node.token(ROOM, "u-host-2", RoleClaim::Host);
    let connect = |token: &String, kind| {
        let options = node.options(ROOM, token.clone());
        let http = node.http.clone();
        async move {
            sanctum_media_client::connect(&http, kind, &options)
                .await
                .expect("join")
        }
    };
    let host = connect(&host_token, Kind::Publish).await;
    let host_view = connect(&host_token, Kind::Subscribe).await;
    let patient = connect(&patient_token, Kind::Publish).await;

    let (status, _) = answer(
        &node,
        &host.resource,
        &host_token,
        r#"{"decision":"granted"}"#,
    )
    .await;
    assert_eq!(status, 409, "nothing waits yet");

    let (status, asked) = ask(&node, "rec-1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    assert_eq!(asked["phase"], "awaitingHost");
    for (resource, token) in [
        (&patient.resource, &patient_token),
        (&host.resource, &host_token),
    ] {
        assert_eq!(
            recording_seen(&node, resource, token).await,
            "awaiting-host"
        );
    }

    // Nobody but the host, on the host's own publishing session, answers.
    let grant = r#"{"decision":"granted"}"#;
    let (status, _) = answer(&node, &patient.resource, &patient_token, grant).await;
    assert_eq!(status, 403, "a participant cannot consent for the host");
    let (status, _) = answer(&node, &patient.resource, &host_token, grant).await;
    assert_eq!(status, 403, "the host answers on its own session only");
    let (status, _) = answer(&node, &host.resource, &other_host, grant).await;
    assert_eq!(status, 403, "another host's token on this host's session");
    let (status, _) = answer(&node, &host.resource, "not-a-token", grant).await;
    assert_eq!(status, 401);
    let (status, _) = answer(&node, &host_view.resource, &host_token, grant).await;
    assert!(
        status == 404 || status == 405,
        "a subscribing session has no consent resource: {status}"
    );
    let (status, _) = answer(
        &node,
        &host.resource,
        &host_token,
        r#"{"decision":"maybe"}"#,
    )
    .await;
    assert_eq!(status, 400);
    let waiting = report(&node, "rec-1").await;
    assert_eq!(
        waiting["phase"], "awaitingHost",
        "nothing records while it waits"
    );

    // Declined: reported failed with its reason, also when the operator asks again.
    let (status, body) = answer(
        &node,
        &host.resource,
        &host_token,
        r#"{"decision":"declined"}"#,
    )
    .await;
    assert_eq!(
        (status, body.contains(r#""recording":"off""#)),
        (200, true),
        "{body}"
    );
    let (status, again) = ask(&node, "rec-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["phase"], "failed");
    assert_eq!(again["reason"], HOST_DECLINED);
    assert_eq!(
        recording_seen(&node, &patient.resource, &patient_token).await,
        "off"
    );
    let (status, _) = answer(&node, &host.resource, &host_token, grant).await;
    assert_eq!(status, 409, "a declined request cannot be granted later");

    // Granted: the recorder starts, and everyone sees the room is recorded.
    let (status, _) = ask(&node, "rec-2").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = answer(&node, &host.resource, &host_token, grant).await;
    assert_eq!(
        (status, body.contains(r#""recording":"on""#)),
        (200, true),
        "{body}"
    );
    let started = report(&node, "rec-2").await;
    assert_eq!(started["phase"], "recording", "{started}");
    assert_eq!(
        recording_seen(&node, &patient.resource, &patient_token).await,
        "on"
    );
    let (status, _) = ask(&node, "rec-2").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "asked again, the started recording reports"
    );

    for s in [host, host_view, patient] {
        s.abandon().await;
    }
    drop(silent);
}
