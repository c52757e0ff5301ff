//! Signatures on audit batches, so that write access to the audit bucket is not enough to
//! add to a chain.
//!
//! Every batch object ends with one signature line over the object's key and its records.
//! The operator signs with an Ed25519 key kept in a Kubernetes Secret of its own
//! namespace: whoever holds its cloud credentials (write access to the bucket) does not
//! hold the key, and verifiers check against public keys published in the cluster, not
//! in the bucket. A media node signs with a key it makes at start and never stores; the
//! first record of its chain states the public half, so no other process (another node of
//! the tenant, with the same cloud credentials) can append to that chain.
//!
//! Nothing here logs a private key; [`Signer`]'s `Debug` prints only its id.

use std::collections::BTreeMap;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain separation of what is signed.
const CONTEXT: &[u8] = b"sanctum-audit-batch-v1\n";

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The random source failed.
    #[error("no randomness available for an audit signing key")]
    Random,
    /// Not an Ed25519 PKCS#8 / SPKI PEM key.
    #[error("not an Ed25519 PEM key")]
    Pem,
}

/// A key that signs batches; its private half never leaves the process (or its Secret).
pub struct Signer {
    key: ed25519_dalek::SigningKey,
    id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Short id of a public key: the first 8 bytes of its SHA-256, in hex.
pub fn key_id(public: &ed25519_dalek::VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public.as_bytes())[..8])
}

impl Signer {
    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|_| KeyError::Random)?;
        Ok(Self::from_key(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    fn from_key(key: ed25519_dalek::SigningKey) -> Self {
        let id = key_id(&key.verifying_key());
        Self { key, id }
    }

    /// Reads a PKCS#8 PEM private key (the operator's Secret).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(Self::from_key)
            .map_err(|_| KeyError::Pem)
    }

    /// The private key as PKCS#8 PEM, to be stored in a Secret (never logged).
    pub fn to_pkcs8_pem(&self) -> zeroize::Zeroizing<String> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| zeroize::Zeroizing::new(pem.to_string()))
            .expect("an Ed25519 key encodes as PKCS#8")
    }

    /// The public key as SPKI PEM, for whoever verifies.
    pub fn public_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("an Ed25519 public key encodes as SPKI")
    }

    /// The public key in hex (as a node chain's first record states it).
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    /// This key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The signature line of the batch stored at `object_key` holding `records`.
    pub fn sign(&self, object_key: &str, records: &str) -> SignatureLine {
        let signature = self.key.sign(&message(object_key, records));
        SignatureLine {
            signature: BatchSignature {
                key_id: self.id.clone(),
                value: hex::encode(signature.to_bytes()),
            },
        }
    }
}

fn message(object_key: &str, records: &str) -> Vec<u8> {
    let mut m = CONTEXT.to_vec();
    m.extend_from_slice(object_key.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(records.as_bytes());
    m
}

/// The last line of a signed batch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignatureLine {
    /// The signature.
    pub signature: BatchSignature,
}

/// Which key signed a batch, and the Ed25519 signature (hex).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchSignature {
    /// Id of the signing key ([`key_id`]).
    pub key_id: String,
    /// The signature over the object key and the records, hex.
    pub value: String,
}

impl SignatureLine {
    /// Parses a line; `None` when it is not a signature line.
    pub fn parse(line: &str) -> Option<Self> {
        line.trim_start()
            .starts_with("{\"signature\"")
            .then(|| serde_json::from_str(line).ok())
            .flatten()
    }

    /// The line as stored.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a signature serializes to JSON")
    }
}

/// Public keys a verifier accepts, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    keys: BTreeMap<String, ed25519_dalek::VerifyingKey>,
}

impl Trust {
    /// Trusts the SPKI PEM keys in `pem` (one or more `PUBLIC KEY` blocks).
    pub fn from_pems(pem: &str) -> Result<Self, KeyError> {
        let mut trust = Self::default();
        let mut rest = pem;
        const END: &str = "-----END PUBLIC KEY-----";
        while let Some(start) = rest.find("-----BEGIN PUBLIC KEY-----") {
            let end = rest[start..].find(END).ok_or(KeyError::Pem)? + start + END.len();
            let key = ed25519_dalek::VerifyingKey::from_public_key_pem(&rest[start..end])
                .map_err(|_| KeyError::Pem)?;
            trust.keys.insert(key_id(&key), key);
            rest = &rest[end..];
        }
        if trust.keys.is_empty() {
            return Err(KeyError::Pem);
        }
        Ok(trust)
    }

    /// Trusts one public key given in hex (a node chain's own key).
    pub fn from_hex(public: &str) -> Result<Self, KeyError> {
        let bytes: [u8; 32] = hex::decode(public)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(KeyError::Pem)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Pem)?;
        let mut trust = Self::default();
        trust.keys.insert(key_id(&key), key);
        Ok(trust)
    }

    /// The ids of the trusted keys.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Checks `signature` over the batch at `object_key` holding `records`.
    pub fn check(
        &self,
        object_key: &str,
        records: &str,
        signature: &BatchSignature,
    ) -> Result<(), SignatureProblem> {
        let key = self
            .keys
            .get(&signature.key_id)
            .ok_or_else(|| SignatureProblem::UnknownKey(signature.key_id.clone()))?;
        let bytes: [u8; 64] = hex::decode(&signature.value)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SignatureProblem::Invalid)?;
        key.verify(
            &message(object_key, records),
            &ed25519_dalek::Signature::from_bytes(&bytes),
        )
        .map_err(|_| SignatureProblem::Invalid)
    }
}

/// Why a batch's signature does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureProblem {
    /// Signed by a key the verifier does not trust.
    #[error("signed by key {0}, which is not trusted")]
    UnknownKey(String),
    /// The signature does not match the content.
    #[error("signed, but the signature does not match its content")]
    Invalid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_the_records_and_the_object_key() {
        let signer = Signer::generate().expect("key");
        let trust = Trust::from_pems(&signer.public_pem()).expect("pem");
        let records = "{\"seq\":1}\n{\"seq\":2}\n";
        let line = signer.sign("tenants/a/00000000000000000001.jsonl", records);
        let parsed = SignatureLine::parse(&line.to_line()).expect("a signature line");
        assert_eq!(parsed, line);
        let key = "tenants/a/00000000000000000001.jsonl";
        assert_eq!(trust.check(key, records, &line.signature), Ok(()));
        assert_eq!(
            trust.check(key, "{\"seq\":1}\n", &line.signature),
            Err(SignatureProblem::Invalid),
            "a record removed"
        );
        assert_eq!(
            trust.check(
                "tenants/b/00000000000000000001.jsonl",
                records,
                &line.signature
            ),
            Err(SignatureProblem::Invalid),
            "moved to another chain"
        );
        let other = Signer::generate().expect("key");
        let forged = other.sign(key, records);
        assert_eq!(
            trust.check(key, records, &forged.signature),
            Err(SignatureProblem::UnknownKey(other.id().to_string()))
        );
        let by_hex = Trust::from_hex(&signer.public_hex()).expect("hex");
        assert_eq!(by_hex.check(key, records, &line.signature), Ok(()));
    }

    #[test]
    fn keys_round_trip_through_pem_and_print_no_secret() {
        let signer = Signer::generate().expect("key");
        let again = Signer::from_pkcs8_pem(&signer.to_pkcs8_pem()).expect("pem");
        assert_eq!(again.id(), signer.id());
        let debug = format!("{signer:?}");
        assert!(debug.contains(signer.id()) && !debug.contains("PRIVATE"));
        let two = format!(
            "{}{}",
            signer.public_pem(),
            Signer::generate().expect("key").public_pem()
        );
        assert_eq!(Trust::from_pems(&two).expect("two keys").ids().count(), 2);
        assert_eq!(Trust::from_pems("no key"), Err(KeyError::Pem));
        assert!(SignatureLine::parse("{\"seq\":1}").is_none());
    }
}
