//! Restore: the recordings of a backup brought back into a bucket under their original
//! keys, each checked against the manifest's SHA-256.

use std::collections::BTreeMap;

use aws_sdk_s3::types::MetadataDirective;
use k8s_openapi::ByteString;
use serde::Serialize;

use super::{BackupError, RESTORED_FROM_VERSION, manifest_key, manifests};
use crate::cloud::objects;
use crate::cloud::{Cloud, CloudError};

/// What a restore did.
#[derive(Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    /// Backup restored from.
    pub backup: String,
    /// Objects restored and verified.
    pub restored: Vec<String>,
    /// Objects of the manifest absent from the backup bucket.
    pub missing: Vec<String>,
    /// Objects whose restored copy did not match the manifest's SHA-256.
    pub mismatched: Vec<String>,
    /// Wrapped key versions brought back.
    pub key_versions: Vec<String>,
}

/// Brings the recordings of backup `id` (or the newest) back into `target_bucket` under
/// their original keys, checking every SHA-256; returns the manifest's wrapped keys.
pub async fn restore(
    backup_cloud: &Cloud,
    target: &Cloud,
    backup_bucket: &str,
    tenant: &str,
    id: Option<&str>,
    target_bucket: &str,
) -> Result<(Restored, BTreeMap<String, ByteString>), BackupError> {
    let all = manifests(backup_cloud, backup_bucket, tenant).await?;
    let (_, manifest) = match id {
        Some(id) => {
            all.into_iter()
                .find(|(_, m)| m.id == id)
                .ok_or_else(|| BackupError::Manifest {
                    key: manifest_key(tenant, id),
                    reason: "no such backup".into(),
                })?
        }
        None => all
            .into_iter()
            .last()
            .ok_or_else(|| BackupError::Manifest {
                key: format!("{tenant}/manifests/"),
                reason: "the tenant has no backup".into(),
            })?,
    };
    let mut report = Restored {
        backup: manifest.id.clone(),
        ..Default::default()
    };
    for object in &manifest.objects {
        let copied = target
            .s3
            .copy_object()
            .bucket(target_bucket)
            .key(&object.key)
            .copy_source(format!("{backup_bucket}/{}", object.backup_key))
            .metadata_directive(MetadataDirective::Replace)
            .set_metadata(object.source_version.as_ref().map(|v| {
                std::collections::HashMap::from([(RESTORED_FROM_VERSION.to_string(), v.clone())])
            }))
            .send()
            .await;
        if let Err(e) = copied {
            let error = CloudError::from_sdk("CopyObject", &e);
            if error.is_not_found() {
                report.missing.push(object.key.clone());
                continue;
            }
            return Err(error.into());
        }
        let (sha, size) = objects::sha256(&target.s3, target_bucket, &object.key, None).await?;
        if sha == object.sha256 && size == object.size {
            report.restored.push(object.key.clone());
        } else {
            report.mismatched.push(object.key.clone());
        }
    }
    report.key_versions = manifest.wrapped_keys.keys().cloned().collect();
    Ok((report, manifest.wrapped_keys))
}
