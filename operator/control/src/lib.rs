//! Control tokens, in one place for both ends: the operator mints one per request
//! ([`mint`]) and the media node verifies it ([`Verifier`]).
//!
//! A token is an EdDSA JWT signed with the tenant's control key, which only the operator
//! holds. It is bound to exactly one request: the method (`htm`), the path (`htu`), the
//! SHA-256 of the body (`bsh`), the one media node it is sent to (`sub`, the pod's name),
//! and a unique `jti` the node remembers until the token expires, so a captured token
//! cannot be replayed, redirected to another node, or carry another body. It lives
//! [`TOKEN_TTL`] seconds.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sanctum_api::control::{self, ControlClaims};
use sha2::{Digest, Sha256};

/// Lifetime of a token the operator mints.
pub const TOKEN_TTL: u64 = 10;
/// Clock skew tolerated between operator and node.
pub const LEEWAY_SECONDS: u64 = 5;
/// Most token ids remembered at once (a flood of valid tokens cannot exhaust memory).
const MAX_REMEMBERED: usize = 100_000;

/// Why a control token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The key is not an Ed25519 PKCS#8 PEM.
    #[error("the control key is not usable: {0}")]
    Key(#[source] jsonwebtoken::errors::Error),
    /// No randomness for the token id.
    #[error("no randomness for the token id")]
    Random,
}

/// Hex SHA-256 of a request body (the empty body included).
pub fn body_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A token for one request to one node.
pub fn mint(
    private_pem: &[u8],
    tenant: &str,
    node: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<String, MintError> {
    let key = EncodingKey::from_ed_pem(private_pem).map_err(MintError::Key)?;
    mint_with(
        &key,
        tenant,
        node,
        method,
        path,
        body,
        unix_now(),
        TOKEN_TTL,
    )
}

/// [`mint`] with a parsed key, a given time and lifetime (the operator keeps the key
/// parsed; tests mint expired and long-lived tokens).
#[allow(clippy::too_many_arguments)]
pub fn mint_with(
    key: &EncodingKey,
    tenant: &str,
    node: &str,
    method: &str,
    path: &str,
    body: &[u8],
    now: u64,
    ttl: u64,
) -> Result<String, MintError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|_| MintError::Random)?;
    let claims = ControlClaims {
        iss: control::ISSUER.to_string(),
        aud: control::audience(tenant),
        sub: node.to_string(),
        iat: now,
        exp: now + ttl,
        jti: hex::encode(id),
        htm: method.to_string(),
        htu: path.to_string(),
        bsh: body_hash(body),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, key).map_err(MintError::Key)
}

/// Why a control request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No bearer token.
    #[error("no bearer token")]
    Missing,
    /// Not a valid control token for this tenant (signature, audience, times, lifetime).
    #[error("invalid control token")]
    Invalid,
    /// A valid token made for another request, body or node.
    #[error("the control token is for another request")]
    WrongRequest,
    /// A token already used.
    #[error("the control token was already used")]
    Replayed,
}

impl AuthError {
    /// Label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Missing => "control-missing",
            AuthError::Invalid => "control-invalid",
            AuthError::WrongRequest => "control-wrong-request",
            AuthError::Replayed => "control-replayed",
        }
    }
}

/// Checks control tokens sent to one node of one tenant, remembering the ids it accepted.
pub struct Verifier {
    key: DecodingKey,
    audience: String,
    node: String,
    seen: Mutex<HashMap<String, u64>>,
}

impl Verifier {
    /// A verifier for `node` (this pod's name) of `tenant`, from the control public key
    /// (SPKI PEM) the operator publishes.
    pub fn from_public_pem(
        pem: &[u8],
        tenant: &str,
        node: &str,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Verifier {
            key: DecodingKey::from_ed_pem(pem)?,
            audience: control::audience(tenant),
            node: node.to_string(),
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Verifies a token for `method` on `path` with `body`, at `now`.
    pub fn verify(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<ControlClaims, AuthError> {
        self.verify_at(token, method, path, body, unix_now())
    }

    /// [`Verifier::verify`] at a given time.
    pub fn verify_at(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: &[u8],
        now: u64,
    ) -> Result<ControlClaims, AuthError> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[control::ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        // Expiry is checked below against `now`, with the leeway.
        validation.validate_exp = false;
        let claims =
            jsonwebtoken::decode::<ControlClaims>(token.as_bytes(), &self.key, &validation)
                .map_err(|_| AuthError::Invalid)?
                .claims;
        if claims.exp + LEEWAY_SECONDS < now
            || claims.iat > now + LEEWAY_SECONDS
            || claims.exp.saturating_sub(claims.iat) > control::MAX_LIFETIME_SECONDS
            || claims.jti.len() < 16
        {
            return Err(AuthError::Invalid);
        }
        if claims.htm != method
            || claims.htu != path
            || claims.sub != self.node
            || claims.bsh != body_hash(body)
        {
            return Err(AuthError::WrongRequest);
        }
        let mut seen = self
            .seen
            .lock()
            .expect("replay cache lock is never poisoned");
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, exp| *exp + LEEWAY_SECONDS >= now);
            if seen.len() >= MAX_REMEMBERED {
                return Err(AuthError::Invalid);
            }
        }
        if seen.insert(claims.jti.clone(), claims.exp).is_some() {
            return Err(AuthError::Replayed);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDiglCguQ2ijp7v+EA180+2EqxafYfYR+C+cfyYn7BUm
-----END PRIVATE KEY-----
";
    const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAQDNvdrY2jwGi4dp9c7ECqr7pxf1LAyjmtI0IRfp8N7Q=
-----END PUBLIC KEY-----
";

    fn key() -> EncodingKey {
        EncodingKey::from_ed_pem(PRIVATE.as_bytes()).expect("key")
    }

    #[test]
    fn a_token_opens_exactly_one_request_on_one_node_once() {
        let verifier =
            Verifier::from_public_pem(PUBLIC.as_bytes(), "clinic-a", "media-0").expect("verifier");
        let body = br#"{"room":"r","bucket":"b","key":"k"}"#;
        let now = 1_800_000_000;
        let token = mint_with(
            &key(),
            "clinic-a",
            "media-0",
            "PUT",
            "/control/v1/recordings/x",
            body,
            now,
            TOKEN_TTL,
        )
        .expect("token");
        let check =
            |t: &str, m: &str, p: &str, b: &[u8], at: u64| verifier.verify_at(t, m, p, b, at);
        assert_eq!(
            check(&token, "GET", "/control/v1/recordings/x", body, now),
            Err(AuthError::WrongRequest)
        );
        assert_eq!(
            check(&token, "PUT", "/control/v1/recordings/y", body, now),
            Err(AuthError::WrongRequest)
        );
        assert_eq!(
            check(
                &token,
                "PUT",
                "/control/v1/recordings/x",
                br#"{"room":"other","bucket":"b","key":"k"}"#,
                now
            ),
            Err(AuthError::WrongRequest),
            "another body"
        );
        assert_eq!(
            check(&token, "PUT", "/control/v1/recordings/x", body, now + 60),
            Err(AuthError::Invalid),
            "expired"
        );
        assert!(check(&token, "PUT", "/control/v1/recordings/x", body, now).is_ok());
        assert_eq!(
            check(&token, "PUT", "/control/v1/recordings/x", body, now),
            Err(AuthError::Replayed)
        );

        let elsewhere =
            Verifier::from_public_pem(PUBLIC.as_bytes(), "clinic-a", "media-1").expect("verifier");
        let token = mint_with(
            &key(),
            "clinic-a",
            "media-0",
            "GET",
            "/p",
            b"",
            now,
            TOKEN_TTL,
        )
        .expect("token");
        assert_eq!(
            elsewhere.verify_at(&token, "GET", "/p", b"", now),
            Err(AuthError::WrongRequest),
            "another node"
        );
        let other_tenant =
            Verifier::from_public_pem(PUBLIC.as_bytes(), "clinic-b", "media-0").expect("verifier");
        assert_eq!(
            other_tenant.verify_at(&token, "GET", "/p", b"", now),
            Err(AuthError::Invalid)
        );
        let long =
            mint_with(&key(), "clinic-a", "media-0", "GET", "/p", b"", now, 3600).expect("token");
        assert_eq!(
            verifier.verify_at(&long, "GET", "/p", b"", now),
            Err(AuthError::Invalid),
            "too long-lived"
        );
    }
}
