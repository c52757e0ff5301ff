//! Join tokens: short-lived JWTs (RFC 7519) signed with the tenant's Ed25519 key (`EdDSA`).
//!
//! The media node only verifies; the tenant's application (or `mint-token` in tests) signs
//! with the private key the operator keeps in the tenant namespace. Tokens and their
//! claims never reach a log: failures are reported by reason only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sanctum_media_core::Role;
use serde::{Deserialize, Serialize};

/// Issuer every Sanctum join token carries.
pub const ISSUER: &str = "sanctum";
/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;

/// What a join token says. `aud` is the tenant; `sub` an opaque user id, never a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// Tenant the token is for.
    pub aud: String,
    /// Opaque user id.
    pub sub: String,
    /// Room the token admits to.
    pub room: String,
    /// What the holder may do.
    pub role: RoleClaim,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Unique token id, for correlating an audit record with the token that was used.
    pub jti: String,
}

/// Role as spelled in the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RoleClaim {
    /// Runs the room.
    Host,
    /// Publishes and subscribes.
    Participant,
    /// Only subscribes.
    Observer,
}

impl From<RoleClaim> for Role {
    fn from(r: RoleClaim) -> Role {
        match r {
            RoleClaim::Host => Role::Host,
            RoleClaim::Participant => Role::Participant,
            RoleClaim::Observer => Role::Observer,
        }
    }
}

/// Why a request's token was refused; `reason()` labels logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token")]
    Missing,
    /// Not a JWT, wrong algorithm, missing or ill-formed claims.
    #[error("the token is malformed")]
    Malformed,
    /// Not signed by this tenant's key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// Past its `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before its `nbf` or issued in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Lives longer than the node accepts.
    #[error("the token's lifetime exceeds the maximum")]
    TooLong,
    /// For another tenant.
    #[error("the token is for another tenant")]
    WrongTenant,
    /// For another room.
    #[error("the token is for another room")]
    WrongRoom,
    /// The role may not do this (an observer publishing, a participant ending others).
    #[error("the token's role does not allow this")]
    Forbidden,
    /// Signed by a key (`kid`) this node does not hold.
    #[error("the token names a signing key this node does not know")]
    UnknownKey,
    /// Withdrawn before its expiry: its holder was removed from the room.
    #[error("the token was revoked")]
    Revoked,
}

impl TokenError {
    /// Stable label for logs and the `reason` metric label.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::Malformed => "malformed",
            TokenError::BadSignature => "bad-signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not-yet-valid",
            TokenError::TooLong => "lifetime-too-long",
            TokenError::WrongTenant => "wrong-tenant",
            TokenError::WrongRoom => "wrong-room",
            TokenError::Forbidden => "role-forbidden",
            TokenError::UnknownKey => "unknown-key",
            TokenError::Revoked => "revoked",
        }
    }

    /// RFC 6750: bad credentials are 401 `invalid_token`, good ones without the right
    /// scope are 403 `insufficient_scope`.
    pub fn is_scope(self) -> bool {
        matches!(self, TokenError::WrongRoom | TokenError::Forbidden)
    }
}

/// Id of a join-token public key (the `kid` of the tokens it verifies): the first 8 bytes
/// of the SHA-256 of the raw Ed25519 key, in hex.
pub fn key_id(public: &ed25519_dalek::VerifyingKey) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(public.as_bytes())[..8])
}

/// Checks join tokens for one tenant, against every public key the tenant publishes (the
/// current one, and the previous one while tokens it signed are still in use).
pub struct Verifier {
    keys: Vec<(String, DecodingKey)>,
    tenant: String,
    max_lifetime: Duration,
}

/// The public key file holds no Ed25519 SPKI PEM key.
#[derive(Debug, thiserror::Error)]
#[error("no Ed25519 public key (SPKI PEM) in the join-token key file")]
pub struct PublicKeyError;

impl Verifier {
    /// A verifier for `tenant` from one or more SPKI PEM public keys, as the operator
    /// publishes them.
    pub fn from_public_pem(
        pem: &[u8],
        tenant: &str,
        max_lifetime: Duration,
    ) -> Result<Self, PublicKeyError> {
        use ed25519_dalek::pkcs8::DecodePublicKey;
        const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
        const END: &str = "-----END PUBLIC KEY-----";
        let text = std::str::from_utf8(pem).map_err(|_| PublicKeyError)?;
        let mut keys = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find(BEGIN) {
            let end = rest[start..].find(END).ok_or(PublicKeyError)? + start + END.len();
            let block = &rest[start..end];
            let public = ed25519_dalek::VerifyingKey::from_public_key_pem(block)
                .map_err(|_| PublicKeyError)?;
            let decoding =
                DecodingKey::from_ed_pem(block.as_bytes()).map_err(|_| PublicKeyError)?;
            keys.push((key_id(&public), decoding));
            rest = &rest[end..];
        }
        if keys.is_empty() {
            return Err(PublicKeyError);
        }
        Ok(Verifier {
            keys,
            tenant: tenant.to_string(),
            max_lifetime,
        })
    }

    /// Ids of the keys this verifier accepts.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    /// Verifies signature, issuer, tenant, times and id syntax, then the room.
    pub fn verify(&self, token: &str, room: &str) -> Result<Claims, TokenError> {
        self.check(token, room, true)
    }

    /// Verifies a token presented for the session it opened (`jti`): everything
    /// [`Verifier::verify`] checks but expiry. A token only opens sessions while it is
    /// valid; the session it opened can still be read and left with it afterwards, since
    /// visits outlast tokens of minutes.
    pub fn verify_for_session(
        &self,
        token: &str,
        room: &str,
        jti: &str,
    ) -> Result<Claims, TokenError> {
        let claims = self.verify_ignoring_expiry(token, room)?;
        if claims.jti != jti {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// Everything [`Verifier::verify`] checks but expiry: for routing a request on an
    /// existing session to its node, where [`Verifier::verify_for_session`] decides.
    pub fn verify_ignoring_expiry(&self, token: &str, room: &str) -> Result<Claims, TokenError> {
        self.check(token, room, false)
    }

    fn check(&self, token: &str, room: &str, check_expiry: bool) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.validate_exp = check_expiry;
        validation.set_audience(&[&self.tenant]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let candidates: Vec<&DecodingKey> = match &header.kid {
            Some(kid) => vec![
                self.keys
                    .iter()
                    .find(|(id, _)| id == kid)
                    .map(|(_, key)| key)
                    .ok_or(TokenError::UnknownKey)?,
            ],
            // A token without `kid` may be signed by any of the tenant's keys.
            None => self.keys.iter().map(|(_, key)| key).collect(),
        };
        let mut result = Err(TokenError::BadSignature);
        for key in candidates {
            result = jsonwebtoken::decode::<Claims>(token.as_bytes(), key, &validation)
                .map(|data| data.claims)
                .map_err(|e| match e.kind() {
                    ErrorKind::InvalidSignature => TokenError::BadSignature,
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                    ErrorKind::InvalidAudience => TokenError::WrongTenant,
                    _ => TokenError::Malformed,
                });
            if result != Err(TokenError::BadSignature) {
                break;
            }
        }
        let claims = result?;
        let now = unix_now();
        if claims.iat > now + LEEWAY_SECONDS {
            return Err(TokenError::NotYetValid);
        }
        if claims.exp.saturating_sub(claims.iat) > self.max_lifetime.as_secs() {
            return Err(TokenError::TooLong);
        }
        if !is_opaque_id(&claims.sub) || !is_opaque_id(&claims.room) || claims.jti.len() > 128 {
            return Err(TokenError::Malformed);
        }
        if claims.room != room {
            return Err(TokenError::WrongRoom);
        }
        Ok(claims)
    }
}

/// Room and user ids: 1 to 64 URL-safe characters, so they can be path segments and log
/// fields without escaping, and too short to carry a name and date of birth.
pub fn is_opaque_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A fresh join-token key pair, in the formats the operator stores: (PKCS#8 PEM private
/// key, zeroized on drop; SPKI PEM public key). For `keygen` and tests; the operator makes
/// the real ones.
pub fn generate_keypair() -> Result<(zeroize::Zeroizing<Vec<u8>>, Vec<u8>), KeyPairError> {
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|_| KeyPairError)?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let private = key.to_pkcs8_pem(LineEnding::LF).map_err(|_| KeyPairError)?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|_| KeyPairError)?;
    Ok((
        zeroize::Zeroizing::new(private.as_bytes().to_vec()),
        public.into_bytes(),
    ))
}

/// No randomness, or PEM encoding failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot generate an Ed25519 key pair")]
pub struct KeyPairError;

/// What to put in a new token.
#[derive(Clone, Debug)]
pub struct Grant {
    /// Tenant (`aud`).
    pub tenant: String,
    /// Room.
    pub room: String,
    /// Opaque user id (`sub`).
    pub user: String,
    /// Role.
    pub role: RoleClaim,
    /// Lifetime from now.
    pub ttl: Duration,
}

/// Signs a token with the tenant's PKCS#8 PEM private key.
pub fn mint(private_pem: &[u8], grant: &Grant) -> Result<String, jsonwebtoken::errors::Error> {
    mint_at(private_pem, grant, unix_now())
}

/// [`mint`] with an explicit issue time (tests of expiry and clock skew).
pub fn mint_at(
    private_pem: &[u8],
    grant: &Grant,
    iat: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).map_err(|_| ErrorKind::Signing("no randomness".into()))?;
    let claims = Claims {
        iss: ISSUER.into(),
        aud: grant.tenant.clone(),
        sub: grant.user.clone(),
        room: grant.room.clone(),
        role: grant.role,
        iat,
        nbf: None,
        exp: iat + grant.ttl.as_secs(),
        jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = signing_key_id(private_pem);
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_pem(private_pem)?)
}

/// The `kid` of tokens signed with a PKCS#8 PEM private key.
pub fn signing_key_id(private_pem: &[u8]) -> Option<String> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let text = std::str::from_utf8(private_pem).ok()?;
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(text).ok()?;
    Some(key_id(&key.verifying_key()))
}

/// Tokens withdrawn before they expire (their holder was removed from the room), each
/// remembered until its own expiry, so the same token cannot open a session again.
#[derive(Debug, Default)]
pub struct Revoked {
    until: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl Revoked {
    /// Withdraws the token `jti`, which expires at `exp`.
    pub fn revoke(&self, jti: &str, exp: u64) {
        let mut until = self.until.lock().unwrap_or_else(|e| e.into_inner());
        let now = unix_now();
        until.retain(|_, exp| *exp + LEEWAY_SECONDS >= now);
        until.insert(jti.to_string(), exp);
    }

    /// Whether `jti` was withdrawn and has not expired yet.
    pub fn is_revoked(&self, jti: &str) -> bool {
        let until = self.until.lock().unwrap_or_else(|e| e.into_inner());
        until
            .get(jti)
            .is_some_and(|exp| *exp + LEEWAY_SECONDS >= unix_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (Vec<u8>, Vec<u8>) {
        let (private, public) = generate_keypair().expect("key pair");
        (private.to_vec(), public)
    }

    fn grant(role: RoleClaim) -> Grant {
        Grant {
            tenant: "clinic-a".into(),
            room: "room-1".into(),
            user: "u-123".into(),
            role,
            ttl: Duration::from_secs(300),
        }
    }

    fn verifier(public: &[u8]) -> Verifier {
        Verifier::from_public_pem(public, "clinic-a", Duration::from_secs(3600)).expect("key")
    }

    #[test]
    fn tokens_name_their_key_and_either_of_two_published_keys_verifies() {
        let (old_private, old_public) = keypair();
        let (new_private, new_public) = keypair();
        let both = verifier(&[old_public.clone(), new_public.clone()].concat());
        assert_eq!(both.key_ids().count(), 2);
        for private in [&old_private, &new_private] {
            let token = mint(private, &grant(RoleClaim::Host)).expect("mint");
            let kid = jsonwebtoken::decode_header(&token).expect("header").kid;
            assert_eq!(kid, signing_key_id(private), "the token names its key");
            assert!(both.verify(&token, "room-1").is_ok(), "either key verifies");
        }
        // Once the old key is withdrawn, its tokens name a key the node does not know.
        let new_only = verifier(&new_public);
        let old_token = mint(&old_private, &grant(RoleClaim::Host)).expect("mint");
        assert_eq!(
            new_only.verify(&old_token, "room-1"),
            Err(TokenError::UnknownKey)
        );
        assert!(Verifier::from_public_pem(b"no key", "clinic-a", Duration::from_secs(60)).is_err());
    }

    #[test]
    fn a_revoked_token_stays_revoked_until_it_expires() {
        let revoked = Revoked::default();
        revoked.revoke("jti-1", unix_now() + 600);
        revoked.revoke("jti-old", unix_now() - 3600);
        assert!(revoked.is_revoked("jti-1"));
        assert!(
            !revoked.is_revoked("jti-old"),
            "expired tokens need no entry"
        );
        assert!(!revoked.is_revoked("jti-2"));
    }

    #[test]
    fn an_expired_token_still_reaches_the_session_it_opened_and_nothing_else() {
        let (private, public) = keypair();
        let v = verifier(&public);
        let old = mint_at(&private, &grant(RoleClaim::Host), unix_now() - 3600).expect("mint");
        assert_eq!(v.verify(&old, "room-1"), Err(TokenError::Expired));
        let jti = jsonwebtoken::dangerous::insecure_decode::<Claims>(&old)
            .expect("claims")
            .claims
            .jti;
        assert!(v.verify_for_session(&old, "room-1", &jti).is_ok());
        assert_eq!(
            v.verify_for_session(&old, "room-1", "another-session"),
            Err(TokenError::Expired),
            "not for a session another token opened"
        );
        assert_eq!(
            v.verify_for_session(&old, "room-2", &jti),
            Err(TokenError::WrongRoom)
        );
        let (other_private, _) = keypair();
        let forged =
            mint_at(&other_private, &grant(RoleClaim::Host), unix_now() - 3600).expect("mint");
        assert!(
            v.verify_for_session(&forged, "room-1", &jti).is_err(),
            "the signature is still checked"
        );
    }

    #[test]
    fn a_valid_token_verifies() {
        let (private, public) = keypair();
        let token = mint(&private, &grant(RoleClaim::Host)).expect("mint");
        let claims = verifier(&public).verify(&token, "room-1").expect("valid");
        assert_eq!(claims.sub, "u-123");
        assert_eq!(claims.role, RoleClaim::Host);
    }

    #[test]
    fn every_kind_of_bad_token_is_refused_for_its_reason() {
        let (private, public) = keypair();
        let (other_private, _) = keypair();
        let v = verifier(&public);
        let now = unix_now();
        let cases: Vec<(String, &str, TokenError)> = vec![
            ("not a token".into(), "room-1", TokenError::Malformed),
            (
                mint(&other_private, &grant(RoleClaim::Host)).expect("mint"),
                "room-1",
                TokenError::UnknownKey,
            ),
            (
                // Another key's signature under this tenant's `kid`.
                {
                    let forged = mint(&other_private, &grant(RoleClaim::Host)).expect("mint");
                    let header = jsonwebtoken::Header {
                        kid: signing_key_id(&private),
                        ..Header::new(Algorithm::EdDSA)
                    };
                    let ours = jsonwebtoken::encode(
                        &header,
                        &serde_json::json!({}),
                        &EncodingKey::from_ed_pem(&private).expect("key"),
                    )
                    .expect("encode");
                    let (our_header, _) = ours.split_once('.').expect("jwt");
                    let (_, rest) = forged.split_once('.').expect("jwt");
                    format!("{our_header}.{rest}")
                },
                "room-1",
                TokenError::BadSignature,
            ),
            (
                mint_at(&private, &grant(RoleClaim::Host), now - 3600).expect("mint"),
                "room-1",
                TokenError::Expired,
            ),
            (
                mint_at(&private, &grant(RoleClaim::Host), now + 600).expect("mint"),
                "room-1",
                TokenError::NotYetValid,
            ),
            (
                mint(
                    &private,
                    &Grant {
                        tenant: "clinic-b".into(),
                        ..grant(RoleClaim::Host)
                    },
                )
                .expect("mint"),
                "room-1",
                TokenError::WrongTenant,
            ),
            (
                mint(&private, &grant(RoleClaim::Host)).expect("mint"),
                "room-2",
                TokenError::WrongRoom,
            ),
            (
                mint(
                    &private,
                    &Grant {
                        ttl: Duration::from_secs(86_400),
                        ..grant(RoleClaim::Host)
                    },
                )
                .expect("mint"),
                "room-1",
                TokenError::TooLong,
            ),
            (
                mint(
                    &private,
                    &Grant {
                        user: "Jane Doe 1970-01-01".into(),
                        ..grant(RoleClaim::Host)
                    },
                )
                .expect("mint"),
                "room-1",
                TokenError::Malformed,
            ),
        ];
        for (token, room, want) in cases {
            assert_eq!(v.verify(&token, room), Err(want), "{}", want.reason());
        }
    }

    #[test]
    fn a_token_signed_with_another_algorithm_is_refused() {
        let (_, public) = keypair();
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": "clinic-a", "sub": "u", "room": "room-1",
            "role": "host", "iat": unix_now(), "exp": unix_now() + 60, "jti": "x"
        });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&public),
        )
        .expect("hs256");
        assert_eq!(
            verifier(&public).verify(&token, "room-1"),
            Err(TokenError::Malformed)
        );
    }
}
