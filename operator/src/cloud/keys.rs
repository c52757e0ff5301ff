//! Per-tenant keys: one KMS key (or the local master key) per tenant, and the tenant's
//! data key, wrapped under it with the encryption context `sanctum:tenant=<name>`.
//!
//! Plaintext keys exist only in memory, in zeroizing buffers; the operator stores only
//! wrapped keys, and never unwraps one: media nodes do, at start (`sanctum_cloud::kms::unwrap`,
//! `sanctum_keywrap::unwrap_local`), under an identity of their own.

use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType, Tag};

use super::{Cloud, CloudError};

pub use sanctum_cloud::kms::KeyContext;
pub use sanctum_keywrap::{
    CONTEXT_KEY, LocalKeyError, new_local_data_key, random_key, unwrap_local,
};
/// Tag naming the tenant on KMS keys and buckets.
pub const TENANT_TAG: &str = "sanctum:tenant";
/// Tag naming the tenant object's uid on KMS keys and buckets: what makes a key or a
/// bucket this tenant's, since a name can be reused by a later tenant.
pub const TENANT_UID_TAG: &str = "sanctum:tenant-uid";

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

/// Finds or creates the tenant's KMS key, with alias, tags and automatic rotation.
///
/// Crash-safe: a key created by an attempt that died before its alias was made is found
/// again by its description (which names the tenant's uid) and adopted, never duplicated.
/// A key the alias points to is used only when it carries this tenant's uid: the alias of
/// a deleted tenant of the same name, or one someone else made, stalls the tenant
/// (`KeyNotOwned`) instead of handing it another tenant's key to use and later shred.
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
            Some(arn) => {
                let owner = key_tag(cloud, &arn, TENANT_UID_TAG).await?;
                if owner.as_deref() != Some(uid) {
                    return Err(not_owned(&alias(tenant), &arn, owner.as_deref()));
                }
                arn
            }
            None => {
                let tag = |k: &str, v: &str| {
                    Tag::builder()
                        .tag_key(k)
                        .tag_value(v)
                        .build()
                        .map_err(|e| CloudError::other("CreateKey", e.to_string()))
                };
                let arn = match find_orphan(cloud, &description(tenant, uid)).await? {
                    // Its description names this tenant's uid; the tags make that checkable.
                    Some(arn) => {
                        kms.tag_resource()
                            .key_id(&arn)
                            .tags(tag(TENANT_TAG, tenant)?)
                            .tags(tag(TENANT_UID_TAG, uid)?)
                            .send()
                            .await
                            .map_err(|e| CloudError::from_sdk("TagResource", &e))?;
                        arn
                    }
                    None => {
                        let created = kms
                            .create_key()
                            .description(description(tenant, uid))
                            .key_usage(KeyUsageType::EncryptDecrypt)
                            .key_spec(KeySpec::SymmetricDefault)
                            .tags(tag(TENANT_TAG, tenant)?)
                            .tags(tag(TENANT_UID_TAG, uid)?)
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

/// The value of one tag of a KMS key (`None` when the key does not carry it).
/// The value of tag `tag` on key `key_id`, over every page of its tags.
pub(crate) async fn key_tag(
    cloud: &Cloud,
    key_id: &str,
    tag: &str,
) -> Result<Option<String>, CloudError> {
    let mut marker = None;
    loop {
        let page = cloud
            .kms
            .list_resource_tags()
            .key_id(key_id)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("ListResourceTags", &e))?;
        if let Some(found) = page.tags().iter().find(|t| t.tag_key() == tag) {
            return Ok(Some(found.tag_value().to_string()));
        }
        if !page.truncated() {
            return Ok(None);
        }
        marker = page.next_marker().map(str::to_string);
    }
}

fn not_owned(what: &str, arn: &str, owner: Option<&str>) -> CloudError {
    let whose = match owner {
        Some(uid) => format!("the tenant object with uid {uid}"),
        None => "no Sanctum tenant".to_string(),
    };
    CloudError::refused(
        "DescribeKey",
        "KeyNotOwned",
        format!(
            "{what} names KMS key {arn}, which belongs to {whose}; remove the alias or set \
             spec.encryption.keyArn"
        ),
    )
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

/// What crypto-shredding did.
#[derive(Debug, PartialEq, Eq)]
pub enum Shred {
    /// The key is scheduled for deletion (or already was, or is gone).
    Scheduled,
    /// The key does not carry this tenant's uid: nothing was deleted.
    NotOwned(String),
}

/// Crypto-shredding: removes the tenant alias and schedules the key for deletion after the
/// shortest waiting period KMS allows (7 days). Only a key tagged with this tenant's uid
/// is touched; repeating it is harmless.
pub async fn schedule_key_deletion(
    cloud: &Cloud,
    tenant: &str,
    uid: &str,
    arn: &str,
) -> Result<Shred, CloudError> {
    // Scheduled by key id: some KMS-compatible services (moto) accept only the id here.
    let key_id = match cloud.kms.describe_key().key_id(arn).send().await {
        Ok(out) => out
            .key_metadata()
            .map(|m| m.key_id().to_string())
            .unwrap_or_else(|| arn.to_string()),
        Err(e) => {
            let error = CloudError::from_sdk("DescribeKey", &e);
            return if error.is_not_found() {
                Ok(Shred::Scheduled)
            } else {
                Err(error)
            };
        }
    };
    let owner = key_tag(cloud, &key_id, TENANT_UID_TAG).await?;
    if owner.as_deref() != Some(uid) {
        return Ok(Shred::NotOwned(
            not_owned("status.keyArn", arn, owner.as_deref()).message,
        ));
    }
    // The alias goes only when it still names this key (a later tenant may own it now).
    if describe(cloud, &alias(tenant)).await?.as_deref() == Some(arn)
        && let Err(e) = cloud
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
    match cloud
        .kms
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
    {
        Ok(_) => Ok(Shred::Scheduled),
        Err(e) => {
            let error = CloudError::from_sdk("ScheduleKeyDeletion", &e);
            // Already pending deletion, or already gone.
            if error.code.as_deref() == Some("KMSInvalidStateException") || error.is_not_found() {
                Ok(Shred::Scheduled)
            } else {
                Err(error)
            }
        }
    }
}

/// A new tenant data key wrapped by KMS under the tenant's context; the plaintext never
/// leaves KMS.
pub async fn new_kms_data_key(
    cloud: &Cloud,
    key: &TenantKey,
    context: KeyContext<'_>,
) -> Result<Vec<u8>, CloudError> {
    sanctum_cloud::kms::new_data_key(&cloud.kms, &key.arn, context).await
}
