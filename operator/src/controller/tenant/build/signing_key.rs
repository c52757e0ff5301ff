//! The tenant's Ed25519 join-token signing key.
//!
//! The private half lives in a Secret created once and replaced only when the tenant's
//! `sanctum.dev/rotate-join-token-key` annotation asks for a new key; the public half is
//! published in a ConfigMap the media nodes mount, with the previous key beside it until
//! the tokens and sessions it signed are over. Key bytes never reach a log.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::namespaced_meta;
use crate::controller::tenant::validate::Validated;

/// Secret holding the private signing key (PKCS#8 PEM under [`PRIVATE_KEY_FILE`]).
pub const SECRET_NAME: &str = "join-token-signing-key";
/// ConfigMap holding the public key (SPKI PEM under [`PUBLIC_KEY_FILE`]).
pub const CONFIG_MAP_NAME: &str = "join-token-public-key";
/// Key of the private key in the Secret.
pub const PRIVATE_KEY_FILE: &str = "private.pem";
/// Key of the public key in the ConfigMap.
pub const PUBLIC_KEY_FILE: &str = "public.pem";
/// Key of the previous public key in the Secret, while it is still published.
pub const PREVIOUS_PUBLIC_FILE: &str = "previous-public.pem";
/// Tenant annotation asking for a new join-token key: each new value, one rotation.
pub const ROTATE_REQUEST: &str = "sanctum.dev/rotate-join-token-key";
/// Secret annotation holding the last rotation request that was carried out.
pub const ROTATION_HANDLED: &str = "sanctum.dev/rotation-handled";
/// Secret annotation: when the previous key stops being published (RFC 3339).
pub const PREVIOUS_RETIRES: &str = "sanctum.dev/previous-key-retires-at";

/// Why a signing key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random source failed.
    #[error("no randomness available: {0}")]
    Random(getrandom::Error),
    /// PEM encoding failed.
    #[error("cannot encode the key: {0}")]
    Encode(String),
    /// The Secret exists but does not hold a usable key; it is never silently replaced.
    #[error(
        "Secret {SECRET_NAME} does not hold a PKCS#8 Ed25519 key under {PRIVATE_KEY_FILE}; delete it to have a new key made"
    )]
    Unreadable,
    /// A rotation was asked for, but the Secret was made immutable (before rotation
    /// existed) and cannot take a new key in place.
    #[error(
        "Secret {SECRET_NAME} is immutable and cannot be rotated in place: delete it to have a new key made (tokens signed by the old key then stop working at once)"
    )]
    Immutable,
}

/// A fresh key pair as the Secret to create; `None` fields are filled by the API server.
/// Not immutable: a rotation replaces the key in place.
pub fn generate_secret(v: &Validated) -> Result<Secret, KeyError> {
    let mut secret = generate(namespaced_meta(v, SECRET_NAME))?;
    secret.immutable = None;
    Ok(secret)
}

/// Whether the tenant's rotation request (`requested`, its annotation) is not yet carried out.
pub fn rotation_due(secret: &Secret, requested: Option<&String>) -> bool {
    requested.is_some_and(|r| {
        secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ROTATION_HANDLED))
            != Some(r)
    })
}

/// The merge patch that rotates the key in `secret`: a new private key, the current public
/// key kept as the previous one until `retires`, and `requested` marked as carried out.
/// It names the Secret's resourceVersion, so a concurrent change fails it (409).
pub fn rotation_patch(
    secret: &Secret,
    requested: &str,
    retires: &str,
) -> Result<serde_json::Value, KeyError> {
    if secret.immutable == Some(true) {
        return Err(KeyError::Immutable);
    }
    let previous = public_key_pem(secret)?;
    let fresh = generate(Default::default())?;
    let private = fresh
        .data
        .as_ref()
        .and_then(|d| d.get(PRIVATE_KEY_FILE))
        .ok_or(KeyError::Unreadable)?;
    Ok(serde_json::json!({
        "metadata": {
            "resourceVersion": secret.metadata.resource_version,
            "annotations": {ROTATION_HANDLED: requested, PREVIOUS_RETIRES: retires},
        },
        "data": {
            PRIVATE_KEY_FILE: private,
            PREVIOUS_PUBLIC_FILE: ByteString(previous.into_bytes()),
        },
    }))
}

/// What media nodes must accept, from `secret` at `now`: the current public key, and the
/// previous one until it retires. With it, when the previous key must next be dropped
/// from the Secret (`Some(true)`: it has retired).
pub fn published_keys(secret: &Secret, now: jiff::Timestamp) -> Result<(String, bool), KeyError> {
    let mut keys = public_key_pem(secret)?;
    let previous = secret
        .data
        .as_ref()
        .and_then(|d| d.get(PREVIOUS_PUBLIC_FILE))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned());
    let retires = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PREVIOUS_RETIRES))
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let Some(previous) = previous else {
        return Ok((keys, false));
    };
    match retires {
        Some(at) if now < at => {
            keys.push_str(&previous);
            Ok((keys, false))
        }
        _ => Ok((keys, true)),
    }
}

/// The merge patch that drops a retired previous key from the Secret.
pub fn retire_patch(secret: &Secret) -> serde_json::Value {
    serde_json::json!({
        "metadata": {
            "resourceVersion": secret.metadata.resource_version,
            "annotations": {PREVIOUS_RETIRES: null},
        },
        "data": {PREVIOUS_PUBLIC_FILE: null},
    })
}

/// Name of the tenant's control key Secret in the operator's namespace: tenant name and a
/// hash of its uid, so a later tenant of the same name never shares it.
pub fn control_key_name(v: &Validated) -> String {
    control_key_name_for(&v.name, &v.owner.uid)
}

/// [`control_key_name`] from a tenant's name and uid.
pub fn control_key_name_for(tenant: &str, uid: &str) -> String {
    let suffix = crate::hash::short_sha256(uid.as_bytes(), 4);
    format!("recording-control-key-{tenant}-{suffix}")
}

/// A fresh control key pair (signs the operator's requests to the tenant's media nodes),
/// kept in the operator's namespace: the tenant's application, which holds the join-token
/// key, must not be able to start recordings.
pub fn generate_control_secret(
    v: &Validated,
    operator_namespace: &str,
) -> Result<Secret, KeyError> {
    let mut labels = super::common_labels(v);
    labels.insert("sanctum.dev/tenant-uid".into(), v.owner.uid.clone());
    generate(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(control_key_name(v)),
        namespace: Some(operator_namespace.to_string()),
        labels: Some(labels),
        ..Default::default()
    })
}

fn generate(
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Result<Secret, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(KeyError::Random)?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Encode(e.to_string()))?;
    Ok(Secret {
        metadata,
        type_: Some("Opaque".into()),
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            PRIVATE_KEY_FILE.to_string(),
            ByteString(pem.as_bytes().to_vec()),
        )])),
        ..Default::default()
    })
}

/// The public key, as SPKI PEM, of the key held in `secret`.
pub fn public_key_pem(secret: &Secret) -> Result<String, KeyError> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(PRIVATE_KEY_FILE))
        .ok_or(KeyError::Unreadable)?;
    let pem = std::str::from_utf8(&bytes.0).map_err(|_| KeyError::Unreadable)?;
    let key = SigningKey::from_pkcs8_pem(pem).map_err(|_| KeyError::Unreadable)?;
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Encode(e.to_string()))
}

/// The ConfigMap media nodes mount to verify join tokens and the operator's control requests.
pub fn build_public_key_config_map(
    v: &Validated,
    public_pem: &str,
    control_pem: &str,
) -> ConfigMap {
    ConfigMap {
        metadata: namespaced_meta(v, CONFIG_MAP_NAME),
        data: Some(BTreeMap::from([
            (PUBLIC_KEY_FILE.to_string(), public_pem.to_string()),
            (
                sanctum_api::control::PUBLIC_KEY_FILE.to_string(),
                control_pem.to_string(),
            ),
        ])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;
    use ed25519_dalek::pkcs8::DecodePublicKey;
    use ed25519_dalek::{Signer, Verifier, VerifyingKey};

    #[test]
    fn generated_keys_are_fresh_and_verify() {
        let v = fixtures::validated("clinic-a");
        let a = generate_secret(&v).expect("key");
        let b = generate_secret(&v).expect("key");
        assert_ne!(a.data, b.data, "each tenant gets its own key");
        assert_eq!(a.immutable, None, "a rotation replaces the key in place");
        let control = generate_control_secret(&v, "sanctum-system").expect("control key");
        assert_eq!(
            control.immutable,
            Some(true),
            "the control key never changes"
        );

        let pem = std::str::from_utf8(&a.data.as_ref().expect("data")[PRIVATE_KEY_FILE].0)
            .expect("utf8")
            .to_string();
        let signing = SigningKey::from_pkcs8_pem(&pem).expect("pkcs8");
        let public =
            VerifyingKey::from_public_key_pem(&public_key_pem(&a).expect("public")).expect("spki");
        let sig = signing.sign(b"token");
        assert!(public.verify(b"token", &sig).is_ok());
    }

    /// `secret` with `patch` (a JSON merge patch) applied, as the API server would.
    fn patched(secret: &Secret, patch: &serde_json::Value) -> Secret {
        fn merge(into: &mut serde_json::Value, patch: &serde_json::Value) {
            match (into, patch) {
                (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                    for (k, v) in b {
                        if v.is_null() {
                            a.remove(k);
                        } else {
                            merge(a.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                        }
                    }
                }
                (a, b) => *a = b.clone(),
            }
        }
        let mut value = serde_json::to_value(secret).expect("json");
        merge(&mut value, patch);
        serde_json::from_value(value).expect("secret")
    }

    #[test]
    fn a_rotation_publishes_both_keys_until_the_previous_one_retires() {
        let v = fixtures::validated("clinic-a");
        let first = generate_secret(&v).expect("key");
        let t0: jiff::Timestamp = "2026-12-07T10:00:00Z".parse().expect("time");
        let (published, _) = published_keys(&first, t0).expect("keys");
        let old = public_key_pem(&first).expect("public");
        assert_eq!(published, old, "one key before any rotation");

        assert!(!rotation_due(&first, None));
        let asked = "2026-12-07".to_string();
        assert!(rotation_due(&first, Some(&asked)));
        let patch = rotation_patch(&first, &asked, "2026-12-07T14:11:00Z").expect("patch");
        let rotated = patched(&first, &patch);
        assert!(!rotation_due(&rotated, Some(&asked)), "carried out once");
        assert!(rotation_due(&rotated, Some(&"again".to_string())));
        let new = public_key_pem(&rotated).expect("public");
        assert_ne!(new, old, "a new key");

        let (published, retired) = published_keys(&rotated, t0).expect("keys");
        assert_eq!(
            published,
            format!("{new}{old}"),
            "both while tokens of the old one live"
        );
        assert!(!retired);
        let later: jiff::Timestamp = "2026-12-07T14:11:00Z".parse().expect("time");
        let (published, retired) = published_keys(&rotated, later).expect("keys");
        assert_eq!(published, new, "the old key retires");
        assert!(retired, "and is to be dropped from the Secret");
        let dropped = patched(&rotated, &retire_patch(&rotated));
        assert_eq!(published_keys(&dropped, later).expect("keys"), (new, false));
    }

    #[test]
    fn an_immutable_secret_is_not_rotated_in_place() {
        let mut old = generate_secret(&fixtures::validated("clinic-a")).expect("key");
        old.immutable = Some(true);
        assert!(matches!(
            rotation_patch(&old, "now", "2026-12-07T14:11:00Z"),
            Err(KeyError::Immutable)
        ));
    }

    #[test]
    fn an_unreadable_secret_is_reported_not_replaced() {
        let mut s = generate_secret(&fixtures::validated("clinic-a")).expect("key");
        s.data = Some(BTreeMap::from([(
            PRIVATE_KEY_FILE.to_string(),
            ByteString(b"garbage".to_vec()),
        )]));
        assert!(matches!(public_key_pem(&s), Err(KeyError::Unreadable)));
    }
}
