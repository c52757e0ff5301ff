//! Per-tenant keys: one KMS key (or the local master key) per tenant, and the tenant's
//! data key, wrapped under it with the encryption context `sanctum:tenant=<name>`.
//!
//! Plaintext keys exist only in memory, in zeroizing buffers; the operator stores only
//! wrapped keys. `unwrap_kms` and `sanctum_keywrap::unwrap_local` are what media nodes call at start.

use aws_sdk_kms::types::{DataKeySpec, KeySpec, KeyState, KeyUsageType, Tag};
use zeroize::Zeroizing;

use super::{Cloud, CloudError};

pub use sanctum_keywrap::{
    CONTEXT_KEY, LocalKeyError, new_local_data_key, random_key, unwrap_local,
};
/// Tag naming the tenant on KMS keys and buckets.
pub const TENANT_TAG: &str = "sanctum:tenant";

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
    sanctum_keywrap::unwrap_kms(&cloud.kms, wrapped, tenant)
        .await
        .map_err(|e| match e {
            sanctum_keywrap::KmsUnwrapError::Decrypt(e) => {
                CloudError::from_sdk("Decrypt", e.as_ref())
            }
            other => CloudError::other("Decrypt", other.to_string()),
        })
}
