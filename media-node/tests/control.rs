//! The control API (what the operator calls to record a room) is served on its own port,
//! over mutual TLS with the tenant's control CA, and refuses every request that is not
//! signed for exactly itself (method, path, body, this node) by this tenant's control key,
//! once, with the documented status; signed requests are answered.

mod support;

use reqwest::{Method, StatusCode};
use sanctum_api::control::{self, ControlClaims};
use sanctum_control::{TOKEN_TTL, mint, mint_with};
use sanctum_media_node::token::{RoleClaim, unix_now};
use support::{ControlPki, NODE_NAME, Node, NodeOptions, TENANT, keypair};

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

fn key(pem: &[u8]) -> jsonwebtoken::EncodingKey {
    jsonwebtoken::EncodingKey::from_ed_pem(pem).expect("key")
}

/// A GET token for `path` issued at `now` and living `ttl` seconds.
fn get_at(node: &Node, path: &str, now: u64, ttl: u64) -> String {
    mint_with(
        &key(&node.control_pem),
        TENANT,
        NODE_NAME,
        "GET",
        path,
        b"",
        now,
        ttl,
    )
    .expect("mint")
}

/// A token of `node`'s tenant key for `method path` with an empty body.
fn token(node: &Node, method: &str, path: &str) -> String {
    signed(node, method, path, b"")
}

/// A token of `node`'s tenant key for `method path` and `body`.
fn signed(node: &Node, method: &str, path: &str, body: &[u8]) -> String {
    mint(&node.control_pem, TENANT, NODE_NAME, method, path, body).expect("mint")
}

async fn call(
    node: &Node,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> (StatusCode, serde_json::Value, bool) {
    node.control_call(method, path, token, body).await
}

#[tokio::test]
async fn unsigned_forged_misdirected_and_replayed_requests_are_refused_with_their_status() {
    let node = Node::start(NodeOptions::default()).await;
    let get = path("rec-1");
    let now = unix_now();

    // 401 with a Bearer challenge: no token, a token signed by another key, a join token,
    // another tenant's token, an expired token, a token that lives too long, another
    // issuer's, garbage.
    let (other_key, _) = keypair();
    let join_token = node.token("room-a", "host-1", RoleClaim::Host);
    let valid_claims = |method: &str, path: &str| ControlClaims {
        iss: control::ISSUER.into(),
        aud: control::audience(TENANT),
        sub: NODE_NAME.into(),
        iat: now,
        exp: now + TOKEN_TTL,
        jti: "0123456789abcdef".into(),
        htm: method.into(),
        htu: path.into(),
        bsh: sanctum_control::body_hash(b""),
    };
    let mut another_issuer = valid_claims("GET", &get);
    another_issuer.iss = "someone-else".into();
    let unauthorized = [
        ("no token", None),
        (
            "another key",
            Some(mint(&other_key, TENANT, NODE_NAME, "GET", &get, b"").expect("mint")),
        ),
        ("a join token", Some(join_token)),
        (
            "another tenant",
            Some(mint(&node.control_pem, "clinic-b", NODE_NAME, "GET", &get, b"").expect("mint")),
        ),
        ("expired", Some(get_at(&node, &get, now - 600, TOKEN_TTL))),
        (
            "too long-lived",
            Some(get_at(&node, &get, now, control::MAX_LIFETIME_SECONDS + 60)),
        ),
        (
            "another issuer",
            Some(sign(&node.control_pem, &another_issuer)),
        ),
        ("garbage", Some("not.a.token".to_string())),
    ];
    for (what, token) in &unauthorized {
        let (status, _, challenged) = call(&node, Method::GET, &get, token.as_deref(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(challenged, "{what}: no WWW-Authenticate challenge");
    }

    // 403: a valid token used on another method, another recording, another node, or with
    // another body than the one it was signed for.
    let for_get = token(&node, "GET", &get);
    let (status, _, _) = call(
        &node,
        Method::POST,
        &format!("{get}/stop"),
        Some(&for_get),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "token for GET used to stop");
    let for_get = token(&node, "GET", &get);
    let (status, _, _) = call(&node, Method::GET, &path("rec-2"), Some(&for_get), None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "token for rec-1 used on rec-2"
    );
    let other_node =
        mint(&node.control_pem, TENANT, "media-test-1", "GET", &get, b"").expect("mint");
    let (status, _, _) = call(&node, Method::GET, &get, Some(&other_node), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "token for another node");
    let signed_body = br#"{"room":"room-a","bucket":"b","key":"recordings/rec-1.sealed"}"#;
    let swapped_body = br#"{"room":"room-a","bucket":"other-tenant","key":"recordings/x.sealed"}"#;
    let put = signed(&node, "PUT", &get, signed_body);
    let (status, _, _) = call(&node, Method::PUT, &get, Some(&put), Some(swapped_body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "token for another body");

    // Signed requests are answered: nothing recorded yet, no publisher in the room.
    let captured = token(&node, "GET", &get);
    let (status, body, _) = call(&node, Method::GET, &get, Some(&captured), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no-such-recording");
    // The same token again: a replay, refused.
    let (status, body, challenged) = call(&node, Method::GET, &get, Some(&captured), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "replayed token");
    assert_eq!(body["error"], "control-replayed");
    assert!(challenged);
    let put = signed(&node, "PUT", &get, signed_body);
    let (status, body, _) = call(&node, Method::PUT, &get, Some(&put), Some(signed_body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "room-not-here");
    let bad = br#"{"room":5}"#;
    let put = signed(&node, "PUT", &get, bad);
    let (status, body, _) = call(&node, Method::PUT, &get, Some(&put), Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad-body");

    // Every refusal is counted by reason.
    let count = |reason: &str| {
        let node = &node;
        let reason = reason.to_string();
        async move {
            node.metric(&format!(
                r#"sanctum_media_auth_failures_total{{reason="{reason}"}}"#
            ))
            .await
        }
    };
    assert_eq!(count("control-missing").await, 1.0);
    assert_eq!(
        count("control-invalid").await,
        (unauthorized.len() - 1) as f64
    );
    assert_eq!(count("control-wrong-request").await, 4.0);
    assert_eq!(count("control-replayed").await, 1.0);
}

#[tokio::test]
async fn only_a_client_certificate_of_the_tenants_control_ca_reaches_the_control_port() {
    let node = Node::start(NodeOptions::default()).await;
    let get = path("rec-1");
    let addr = node.running.control_addr.expect("control listener");
    let name = control::server_name(TENANT);
    let pki_of = |ca: &[u8]| ControlPki {
        ca: ca.to_vec(),
        ..ControlPki::new(TENANT)
    };

    // No client certificate, or one of another CA (another tenant's operator identity):
    // the TLS handshake fails, before any token is looked at.
    let anonymous = pki_of(&node.control_ca).client(&name, addr, false);
    let foreign = pki_of(&node.control_ca).client(&name, addr, true);
    for (what, client) in [
        ("no client certificate", anonymous),
        ("another CA's certificate", foreign),
    ] {
        let result = client
            .get(format!("{}{get}", node.control_base))
            .bearer_auth(token(&node, "GET", &get))
            .send()
            .await;
        assert!(result.is_err(), "{what}: connected ({result:?})");
    }
    // The control routes are not on the public signaling port.
    let (status, _) = {
        let r = node
            .http
            .get(format!("{}{get}", node.base))
            .bearer_auth(token(&node, "GET", &get))
            .send()
            .await
            .expect("signaling request");
        (r.status(), ())
    };
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "control API on the signaling port"
    );
    // The operator's certificate gets through.
    let (status, body, _) = call(
        &node,
        Method::GET,
        &get,
        Some(&token(&node, "GET", &get)),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("no-such-recording"))
    );
}
