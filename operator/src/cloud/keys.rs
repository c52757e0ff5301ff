//! Per-tenant keys: one KMS key (or the local master key) per tenant, and the tenant's
//! data key, wrapped under it with the encryption context `sanctum:tenant=<name>`.
//!
//! Plaintext keys exist only in memory, in zeroizing buffers; the operator stores only
//! wrapped keys. `unwrap_local` and `unwrap_kms` are what media nodes call at start.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeySpec, KeyState, KeyUsageType, Tag};
use zeroize::Zeroizing;

use super::{Cloud, CloudError};

/// Encryption-context key binding a wrapped key to its tenant.
pub const CONTEXT_KEY: &str = "sanctum:tenant";
/// Tag naming the tenant on KMS keys and buckets.
pub const TENANT_TAG: &str = "sanctum:tenant";
/// Format marker of locally wrapped keys.
const LOCAL_FORMAT: &[u8] = b"sanctum-local-v1";

/// The tenant's key-encryption key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantKey {
    /// KMS key ARN, or `local` for the local provider.
    pub arn: String,
}

/// Alias of the tenant's KMS key.
pub fn alias(tenant: &str) -> String {
    format!("alias/sanctum/{tenant}")
}

fn description(tenant: &str, uid: &str) -> String {
    format!("Sanctum tenant {tenant} ({uid})")
}

fn context(tenant: &str) -> (String, String) {
    (CONTEXT_KEY.to_string(), tenant.to_string())
}

/// Finds or creates the tenant's KMS key, with alias, tags and automatic rotation.
///
/// Crash-safe: a key created by an attempt that died before its alias was made is found
/// again by its description (which names the tenant's uid) and adopted, never duplicated.
pub async fn ensure_kms_key(
    cloud: &Cloud,
    tenant: &str,
    uid: &str,
    given_arn: Option<&str>,
    rotation_days: i32,
) -> Result<TenantKey, CloudError> {
    let kms = &cloud.kms;
    let key_id = match given_arn {
        Some(arn) => arn.to_string(),
        None => match describe(cloud, &alias(tenant)).await? {
            Some(arn) => arn,
            None => {
                let arn = match find_orphan(cloud, &description(tenant, uid)).await? {
                    Some(arn) => arn,
                    None => {
                        let tag = |k: &str, v: &str| {
                            Tag::builder()
                                .tag_key(k)
                                .tag_value(v)
                                .build()
                                .map_err(|e| CloudError::other("CreateKey", e.to_string()))
                        };
                        let created = kms
                            .create_key()
                            .description(description(tenant, uid))
                            .key_usage(KeyUsageType::EncryptDecrypt)
                            .key_spec(KeySpec::SymmetricDefault)
                            .tags(tag(TENANT_TAG, tenant)?)
                            .tags(tag("sanctum:tenant-uid", uid)?)
                            .send()
                            .await
                            .map_err(|e| CloudError::from_sdk("CreateKey", &e))?;
                        created
                            .key_metadata()
                            .and_then(|m| m.arn())
                            .ok_or_else(|| {
                                CloudError::other("CreateKey", "no key ARN in the response")
                            })?
                            .to_string()
                    }
                };
                kms.create_alias()
                    .alias_name(alias(tenant))
                    .target_key_id(&arn)
                    .send()
                    .await
                    .map_err(|e| CloudError::from_sdk("CreateAlias", &e))?;
                arn
            }
        },
    };
    let rotating = kms
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("GetKeyRotationStatus", &e))?
        .key_rotation_enabled();
    if !rotating {
        kms.enable_key_rotation()
            .key_id(&key_id)
            .rotation_period_in_days(rotation_days)
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("EnableKeyRotation", &e))?;
    }
    Ok(TenantKey { arn: key_id })
}

async fn describe(cloud: &Cloud, key_id: &str) -> Result<Option<String>, CloudError> {
    match cloud.kms.describe_key().key_id(key_id).send().await {
        Ok(out) => Ok(out
            .key_metadata()
            .filter(|m| m.key_state() != Some(&KeyState::PendingDeletion))
            .and_then(|m| m.arn())
            .map(str::to_string)),
        Err(e) => {
            let error = CloudError::from_sdk("DescribeKey", &e);
            if error.is_not_found() {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

async fn find_orphan(cloud: &Cloud, wanted: &str) -> Result<Option<String>, CloudError> {
    let mut marker = None;
    loop {
        let page = cloud
            .kms
            .list_keys()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("ListKeys", &e))?;
        for key in page.keys() {
            let Some(id) = key.key_id() else { continue };
            let out = cloud
                .kms
                .describe_key()
                .key_id(id)
                .send()
                .await
                .map_err(|e| CloudError::from_sdk("DescribeKey", &e))?;
            if let Some(meta) = out.key_metadata()
                && meta.description() == Some(wanted)
                && meta.key_state() == Some(&KeyState::Enabled)
            {
                return Ok(meta.arn().map(str::to_string));
            }
        }
        if !page.truncated() {
            return Ok(None);
        }
        marker = page.next_marker().map(str::to_string);
    }
}

/// Crypto-shredding: removes the tenant alias and schedules the key for deletion after the
/// shortest waiting period KMS allows (7 days). Repeating it is harmless.
pub async fn schedule_key_deletion(
    cloud: &Cloud,
    tenant: &str,
    arn: &str,
) -> Result<(), CloudError> {
    if let Err(e) = cloud
        .kms
        .delete_alias()
        .alias_name(alias(tenant))
        .send()
        .await
    {
        let error = CloudError::from_sdk("DeleteAlias", &e);
        if !error.is_not_found() {
            return Err(error);
        }
    }
    // Scheduled by key id: some KMS-compatible services (moto) accept only the id here.
    let key_id = match cloud.kms.describe_key().key_id(arn).send().await {
        Ok(out) => out
            .key_metadata()
            .map(|m| m.key_id().to_string())
            .unwrap_or_else(|| arn.to_string()),
        Err(e) => {
            let error = CloudError::from_sdk("DescribeKey", &e);
            return if error.is_not_found() {
                Ok(())
            } else {
                Err(error)
            };
        }
    };
    match cloud
        .kms
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let error = CloudError::from_sdk("ScheduleKeyDeletion", &e);
            // Already pending deletion, or already gone.
            if error.code.as_deref() == Some("KMSInvalidStateException") || error.is_not_found() {
                Ok(())
            } else {
                Err(error)
            }
        }
    }
}

/// A new tenant data key wrapped by KMS; the plaintext never leaves KMS.
pub async fn new_kms_data_key(
    cloud: &Cloud,
    key: &TenantKey,
    tenant: &str,
) -> Result<Vec<u8>, CloudError> {
    let (k, v) = context(tenant);
    let out = cloud
        .kms
        .generate_data_key_without_plaintext()
        .key_id(&key.arn)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context(k, v)
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("GenerateDataKeyWithoutPlaintext", &e))?;
    Ok(out
        .ciphertext_blob()
        .ok_or_else(|| {
            CloudError::other(
                "GenerateDataKeyWithoutPlaintext",
                "no ciphertext in the response",
            )
        })?
        .as_ref()
        .to_vec())
}

/// Unwraps a KMS-wrapped tenant data key; fails unless the context names `tenant`.
pub async fn unwrap_kms(
    cloud: &Cloud,
    wrapped: &[u8],
    tenant: &str,
) -> Result<Zeroizing<Vec<u8>>, CloudError> {
    let (k, v) = context(tenant);
    let out = cloud
        .kms
        .decrypt()
        .ciphertext_blob(Blob::new(wrapped.to_vec()))
        .encryption_context(k, v)
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("Decrypt", &e))?;
    Ok(Zeroizing::new(
        out.plaintext()
            .ok_or_else(|| CloudError::other("Decrypt", "no plaintext in the response"))?
            .as_ref()
            .to_vec(),
    ))
}

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
