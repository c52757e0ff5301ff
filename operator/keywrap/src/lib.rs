//! Tenant data keys wrapped under a local master key (the `local` key provider), and the
//! sealed recording format ([`seal`]) those keys open: shared by the operator, which wraps
//! and (in restore drills) opens, and the media node and tools, which seal and unwrap. KMS
//! wrapping is `sanctum_cloud::kms`.
//!
//! Plaintext keys live only in zeroizing buffers; nothing here logs or stores them.

#![forbid(unsafe_code)]

pub mod seal;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

/// Encryption-context key binding a wrapped key to its tenant (KMS context and local AAD).
pub const CONTEXT_KEY: &str = "sanctum:tenant";
/// Format marker of locally wrapped keys.
const LOCAL_FORMAT: &[u8] = b"sanctum-local-v1";

/// Why a local key operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocalKeyError {
    /// The master key is not 32 bytes.
    #[error("the local master key must be 32 bytes")]
    BadMasterKey,
    /// The wrapped key was altered, is for another tenant, or under another master key.
    #[error("the wrapped key does not open with this master key and tenant")]
    Unwrap,
    /// The random source failed.
    #[error("no randomness available")]
    Random,
}

/// A fresh random 256-bit key (master key or data key), zeroized on drop.
pub fn random_key() -> Result<Zeroizing<Vec<u8>>, LocalKeyError> {
    let mut key = Zeroizing::new(vec![0u8; 32]);
    aws_lc_rs::rand::fill(&mut key).map_err(|_| LocalKeyError::Random)?;
    Ok(key)
}

fn aad(tenant: &str) -> Vec<u8> {
    format!("{CONTEXT_KEY}={tenant}").into_bytes()
}

/// Wraps a new random data key under the local master key with AES-256-GCM, binding the
/// tenant name as associated data. Layout: marker, 12-byte nonce, ciphertext and tag.
pub fn new_local_data_key(master: &[u8], tenant: &str) -> Result<Vec<u8>, LocalKeyError> {
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, master).map_err(|_| LocalKeyError::BadMasterKey)?,
    );
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| LocalKeyError::Random)?;
    let data_key = random_key()?;
    let mut sealed = data_key.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(tenant)),
        &mut sealed,
    )
    .map_err(|_| LocalKeyError::BadMasterKey)?;
    let mut out = LOCAL_FORMAT.to_vec();
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a key made by [`new_local_data_key`]; fails for any other tenant or master key.
pub fn unwrap_local(
    master: &[u8],
    wrapped: &[u8],
    tenant: &str,
) -> Result<Zeroizing<Vec<u8>>, LocalKeyError> {
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, master).map_err(|_| LocalKeyError::BadMasterKey)?,
    );
    let rest = wrapped
        .strip_prefix(LOCAL_FORMAT)
        .ok_or(LocalKeyError::Unwrap)?;
    if rest.len() < NONCE_LEN {
        return Err(LocalKeyError::Unwrap);
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| LocalKeyError::Unwrap)?;
    let mut buffer = Zeroizing::new(sealed.to_vec());
    let plain = key
        .open_in_place(nonce, Aad::from(aad(tenant)), &mut buffer)
        .map_err(|_| LocalKeyError::Unwrap)?;
    Ok(Zeroizing::new(plain.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_wrap_binds_tenant_and_master_key() {
        let master = random_key().expect("random");
        let wrapped = new_local_data_key(&master, "clinic-a").expect("wrap");
        let key = unwrap_local(&master, &wrapped, "clinic-a").expect("unwrap");
        assert_eq!(key.len(), 32);
        assert_eq!(
            unwrap_local(&master, &wrapped, "clinic-b"),
            Err(LocalKeyError::Unwrap),
            "other tenant"
        );
        let other = random_key().expect("random");
        assert_eq!(
            unwrap_local(&other, &wrapped, "clinic-a"),
            Err(LocalKeyError::Unwrap),
            "other master key"
        );
        let mut tampered = wrapped.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            unwrap_local(&master, &tampered, "clinic-a"),
            Err(LocalKeyError::Unwrap),
            "tampered"
        );
        let again = new_local_data_key(&master, "clinic-a").expect("wrap");
        assert_ne!(
            unwrap_local(&master, &again, "clinic-a").expect("unwrap"),
            key,
            "each data key is fresh"
        );
    }

    #[test]
    fn wrapped_keys_do_not_contain_the_plaintext() {
        let master = random_key().expect("random");
        let wrapped = new_local_data_key(&master, "clinic-a").expect("wrap");
        let key = unwrap_local(&master, &wrapped, "clinic-a").expect("unwrap");
        assert!(!wrapped.windows(32).any(|w| w == key.as_slice()));
    }
}
