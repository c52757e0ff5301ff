//! TURN credentials handed to clients with their answer, for networks where neither UDP
//! nor ICE-TCP reaches the node.
//!
//! The tenant runs a TURN service (coturn with `use-auth-secret`) that shares a secret with
//! the node. For each new session the node mints a credential in the TURN REST API scheme
//! coturn implements: the username is `<expiry, Unix seconds>:<random id>` and the password
//! is base64(HMAC-SHA1(secret, username)). The TURN server checks the expiry itself, so a
//! credential dies on its own; it is only valid while a session of the node could still
//! be running. The credential travels in the 201 response's `Link: <url>; rel="ice-server"`
//! headers (RFC 9725 §4.6) and is never logged.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use axum::http::HeaderValue;
use base64::Engine as _;
use zeroize::Zeroizing;

/// Where TURN is and how credentials are made.
#[derive(Clone, Debug)]
pub struct TurnConfig {
    /// `turn:`, `turns:` (or `stun:`) URIs (RFC 7064/7065) the clients use.
    pub urls: Vec<String>,
    /// File holding the shared secret (the tenant's mounted Secret); read for every
    /// credential, so a rotated secret applies to the next session.
    pub secret_file: PathBuf,
    /// How long a credential is valid.
    pub ttl: Duration,
}

/// Why TURN cannot be configured or a credential made.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// A URL is not a TURN or STUN URI, or could break out of the Link header.
    #[error("{0:?} is not a turn:, turns: or stun: URI without spaces, quotes or angle brackets")]
    BadUrl(String),
    /// The shared secret file cannot be read or is empty.
    #[error("cannot read the TURN shared secret from {path}: {reason}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl TurnConfig {
    /// Checks the URLs once at start, so a typo fails the node instead of every call.
    pub fn validate(&self) -> Result<(), TurnError> {
        for url in &self.urls {
            let scheme_ok = ["turn:", "turns:", "stun:"]
                .iter()
                .any(|s| url.len() > s.len() && url.starts_with(s));
            let safe = url
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '<' | '>' | ',' | ';'));
            if !scheme_ok || !safe {
                return Err(TurnError::BadUrl(url.clone()));
            }
        }
        self.secret().map(|_| ())
    }

    fn secret(&self) -> Result<Zeroizing<Vec<u8>>, TurnError> {
        let fail = |reason: String| TurnError::Secret {
            path: self.secret_file.clone(),
            reason,
        };
        let raw =
            Zeroizing::new(std::fs::read(&self.secret_file).map_err(|e| fail(e.to_string()))?);
        // A Secret written with `kubectl create secret --from-literal` has no newline, one
        // written from a file often does; coturn's static-auth-secret never includes it.
        let end = raw
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        if end == 0 {
            return Err(fail("it is empty".into()));
        }
        Ok(Zeroizing::new(raw[..end].to_vec()))
    }

    /// A fresh credential as the `Link` header values of a 201 response, one per URL.
    pub fn link_headers(&self, now: SystemTime) -> Result<Vec<HeaderValue>, TurnError> {
        let secret = self.secret()?;
        let expiry = now
            .checked_add(self.ttl)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let username = format!("{expiry}:{}", crate::media::random_hex(8));
        let credential = credential(&secret, &username);
        Ok(self
            .urls
            .iter()
            .filter_map(|url| {
                let value = if url.starts_with("stun:") {
                    format!("<{url}>; rel=\"ice-server\"")
                } else {
                    format!(
                        "<{url}>; rel=\"ice-server\"; username=\"{username}\"; \
                         credential=\"{credential}\"; credential-type=\"password\""
                    )
                };
                let mut value = HeaderValue::from_str(&value).ok()?;
                value.set_sensitive(true);
                Some(value)
            })
            .collect())
    }
}

/// The TURN REST API password of `username`: base64(HMAC-SHA1(secret, username)).
pub fn credential(secret: &[u8], username: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, username.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_turn_rest_api_hmac() {
        // RFC 2202 test case 2 (HMAC-SHA1, key "Jefe"), in base64.
        assert_eq!(
            credential(b"Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
    }

    #[test]
    fn links_carry_a_credential_that_expires_after_the_ttl() {
        let dir = tempfile::tempdir().expect("dir");
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, "s3cret\n").expect("write");
        let config = TurnConfig {
            urls: vec![
                "turn:turn.example:3478?transport=tcp".into(),
                "stun:turn.example:3478".into(),
            ],
            secret_file,
            ttl: Duration::from_secs(600),
        };
        config.validate().expect("valid");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let links = config.link_headers(now).expect("links");
        assert_eq!(links.len(), 2);
        assert!(links.iter().all(HeaderValue::is_sensitive));
        let turn = links[0].to_str().expect("ascii");
        let field = |name: &str| {
            turn.split("; ")
                .find_map(|p| p.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .expect(name)
        };
        assert!(turn.starts_with("<turn:turn.example:3478?transport=tcp>; rel=\"ice-server\""));
        let username = field("username");
        assert!(username.starts_with("1000600:"), "{username}");
        // The trailing newline of the file is not part of the secret.
        assert_eq!(field("credential"), credential(b"s3cret", &username));
        assert_eq!(field("credential-type"), "password");
        assert_eq!(
            links[1].to_str().expect("ascii"),
            "<stun:turn.example:3478>; rel=\"ice-server\""
        );
        let again = config.link_headers(now).expect("links");
        assert_ne!(again[0], links[0], "every session gets its own username");
    }

    #[test]
    fn urls_that_could_break_the_header_and_empty_secrets_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, "x").expect("write");
        for url in [
            "http://turn.example",
            "turn:",
            "turn:a>; rel=\"x\"",
            "turn:a b",
        ] {
            let config = TurnConfig {
                urls: vec![url.into()],
                secret_file: secret_file.clone(),
                ttl: Duration::from_secs(60),
            };
            assert!(
                matches!(config.validate(), Err(TurnError::BadUrl(_))),
                "{url}"
            );
        }
        std::fs::write(&secret_file, " \n").expect("write");
        let config = TurnConfig {
            urls: vec!["turn:a".into()],
            secret_file,
            ttl: Duration::from_secs(60),
        };
        assert!(matches!(config.validate(), Err(TurnError::Secret { .. })));
    }
}
