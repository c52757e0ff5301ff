//! The control API (what the operator calls to record a room) refuses every request that
//! is not signed for exactly itself by this tenant's control key, with the documented
//! status, and answers signed requests.

mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use sanctum_api::control::{self, ControlClaims};
use sanctum_media_node::control::mint;
use sanctum_media_node::token::{RoleClaim, unix_now};
use support::{Node, NodeOptions, TENANT, keypair};

fn path(id: &str) -> String {
    format!("{}/{id}", control::RECORDINGS_PATH)
}

/// Signs `claims` with `pem` as EdDSA, whatever they say.
fn sign(pem: &[u8], claims: &ControlClaims) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        claims,
        &jsonwebtoken::EncodingKey::from_ed_pem(pem).expect("key"),
    )
    .expect("sign")
}

fn claims(method: &str, path: &str) -> ControlClaims {
    let now = unix_now();
    ControlClaims {
        iss: control::ISSUER.into(),
        aud: control::audience(TENANT),
        iat: now,
        exp: now + 60,
        htm: method.into(),
        htu: path.into(),
    }
}

async fn call(
    node: &Node,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value, bool) {
    let mut request = node.http.request(method, format!("{}{path}", node.base));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let challenged = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .is_some();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body, challenged)
}

#[tokio::test]
async fn unsigned_forged_and_misdirected_requests_are_refused_with_their_status() {
    let node = Node::start(NodeOptions::default()).await;
    let get = path("rec-1");
    let ttl = Duration::from_secs(60);
    let valid = mint(&node.control_pem, TENANT, "GET", &get, ttl).expect("mint");

    // 401 with a Bearer challenge: no token, a token signed by another key, a join token,
    // another tenant's token, an expired token, a token that lives too long.
    let (other_key, _) = keypair();
    let join_token = node.token("room-a", "host-1", RoleClaim::Host);
    // `mint` cannot make an expired token or another issuer's: those claims are hand-made.
    let mut expired = claims("GET", &get);
    expired.iat -= 600;
    expired.exp = unix_now() - 300;
    let too_long = Duration::from_secs(control::MAX_LIFETIME_SECONDS + 60);
    let mut wrong_issuer = claims("GET", &get);
    wrong_issuer.iss = "someone-else".into();
    let unauthorized = [
        ("no token", None),
        (
            "another key",
            Some(mint(&other_key, TENANT, "GET", &get, ttl).expect("mint")),
        ),
        ("a join token", Some(join_token)),
        (
            "another tenant",
            Some(mint(&node.control_pem, "clinic-b", "GET", &get, ttl).expect("mint")),
        ),
        ("expired", Some(sign(&node.control_pem, &expired))),
        (
            "too long-lived",
            Some(mint(&node.control_pem, TENANT, "GET", &get, too_long).expect("mint")),
        ),
        (
            "another issuer",
            Some(sign(&node.control_pem, &wrong_issuer)),
        ),
        ("garbage", Some("not.a.token".to_string())),
    ];
    for (what, token) in &unauthorized {
        let (status, _, challenged) = call(&node, Method::GET, &get, token.as_deref(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(challenged, "{what}: no WWW-Authenticate challenge");
    }

    // 403: a valid token replayed on another method or another recording.
    let (status, _, _) = call(
        &node,
        Method::POST,
        &format!("{get}/stop"),
        Some(&valid),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "token for GET used to stop");
    let (status, _, _) = call(&node, Method::GET, &path("rec-2"), Some(&valid), None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "token for rec-1 used on rec-2"
    );

    // Signed requests are answered: nothing recorded yet, no publisher in the room.
    let (status, body, _) = call(&node, Method::GET, &get, Some(&valid), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no-such-recording");
    let put = mint(&node.control_pem, TENANT, "PUT", &get, ttl).expect("mint");
    let start = serde_json::json!({
        "room": "room-a", "bucket": "b", "key": "recordings/rec-1.sealed",
    });
    let (status, body, _) = call(&node, Method::PUT, &get, Some(&put), Some(start)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "room-not-here");
    let (status, body, _) = call(
        &node,
        Method::PUT,
        &get,
        Some(&put),
        Some(serde_json::json!({"room": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad-body");

    // Every refusal is counted by reason.
    let invalid = node
        .metric(r#"sanctum_media_auth_failures_total{reason="control-invalid"}"#)
        .await;
    let missing = node
        .metric(r#"sanctum_media_auth_failures_total{reason="control-missing"}"#)
        .await;
    let wrong = node
        .metric(r#"sanctum_media_auth_failures_total{reason="control-wrong-request"}"#)
        .await;
    assert_eq!(
        (missing, invalid, wrong),
        (1.0, (unauthorized.len() - 1) as f64, 2.0)
    );
}
