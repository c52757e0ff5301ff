//! The tenant's Ed25519 join-token signing key.
//!
//! The private half lives in an immutable Secret created once; the public half is
//! published in a ConfigMap the media nodes mount. Key bytes never reach a log.

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
}

/// A fresh key pair as the Secret to create; `None` fields are filled by the API server.
pub fn generate_secret(v: &Validated) -> Result<Secret, KeyError> {
    generate(namespaced_meta(v, SECRET_NAME))
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
    fn generated_keys_are_fresh_immutable_and_verify() {
        let v = fixtures::validated("clinic-a");
        let a = generate_secret(&v).expect("key");
        let b = generate_secret(&v).expect("key");
        assert_ne!(a.data, b.data, "each tenant gets its own key");
        assert_eq!(a.immutable, Some(true));

        let pem = std::str::from_utf8(&a.data.as_ref().expect("data")[PRIVATE_KEY_FILE].0)
            .expect("utf8")
            .to_string();
        let signing = SigningKey::from_pkcs8_pem(&pem).expect("pkcs8");
        let public =
            VerifyingKey::from_public_key_pem(&public_key_pem(&a).expect("public")).expect("spki");
        let sig = signing.sign(b"token");
        assert!(public.verify(b"token", &sig).is_ok());
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
