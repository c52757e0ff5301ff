//! Restore drills: a backup restored into a scratch bucket made for the drill, every
//! SHA-256 checked, one sealed recording opened end to end with the wrapped keys the
//! backup itself carries, and the scratch bucket removed again.
//!
//! The drill writes only into a bucket it made: it refuses a scratch bucket that exists,
//! tags the one it makes with [`DRILL_TAG`] (the tenant's name), and goes on only when
//! that bucket is empty after the tag. A scheduled drill first removes the tagged scratch
//! buckets an earlier, crashed run of the same tenant left under its prefix, so nothing
//! leaks across crashes. The opened recording goes nowhere: every chunk is authenticated
//! and the plaintext is dropped as it is read.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{Tag, Tagging};
use k8s_openapi::ByteString;
use sanctum_cloud::kms::KeyContext;
use sanctum_keywrap::seal;
use serde::Serialize;
use zeroize::Zeroizing;

use super::restore;
use crate::cloud::objects;
use crate::cloud::{Cloud, CloudError};

/// Bucket tag naming the tenant whose drill made a scratch bucket: the only mark that lets
/// a later run remove it.
pub const DRILL_TAG: &str = "sanctum:restore-drill";

/// How the drill unwraps the tenant key version that wrapped the sample's data key.
pub enum Opener {
    /// KMS `Decrypt` under the tenant's encryption context (the `aws` provider).
    Kms {
        /// The VideoTenant's uid (the context binds it).
        uid: String,
    },
    /// The local provider's master key.
    Local {
        /// The 32-byte master key.
        master: Zeroizing<Vec<u8>>,
    },
    /// No key access: the restore and its checksums only, the sample not opened.
    Skip,
}

/// What one drill restores, into where.
pub struct DrillPlan {
    /// Tenant.
    pub tenant: String,
    /// Backup bucket.
    pub backup_bucket: String,
    /// Backup id; the newest when `None`.
    pub backup_id: Option<String>,
    /// Scratch bucket to make, restore into and remove.
    pub scratch_bucket: String,
    /// Leave the scratch bucket in place (to look at it by hand).
    pub keep: bool,
    /// How to open the sample.
    pub opener: Opener,
    /// Remove tagged scratch buckets of this tenant under this prefix first (a scheduled
    /// drill's crashed runs).
    pub sweep_prefix: Option<String>,
}

/// The recording a drill opened.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Its key.
    pub key: String,
    /// Tenant key version that wrapped its data key.
    pub key_version: i32,
    /// Chunks authenticated.
    pub chunks: u32,
    /// Plaintext bytes (counted, never kept).
    pub bytes: u64,
}

/// What a drill found; `error` is set when it failed.
#[derive(Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    /// Backup restored.
    pub backup: String,
    /// Objects restored whose SHA-256 and size match the manifest.
    pub objects: usize,
    /// Objects of the manifest absent from the backup bucket.
    pub missing: Vec<String>,
    /// Objects whose restored copy does not match the manifest.
    pub mismatched: Vec<String>,
    /// Wrapped key versions the backup carries.
    pub key_versions: Vec<String>,
    /// The recording opened, if one was.
    pub sample: Option<Sample>,
    /// The scratch bucket used.
    pub scratch_bucket: String,
    /// Object versions deleted from it afterwards.
    pub scratch_versions_deleted: usize,
    /// Whether it was kept (`--keep`).
    pub scratch_bucket_kept: bool,
    /// Scratch buckets of crashed earlier runs removed first.
    pub leftovers_removed: Vec<String>,
    /// Why the drill failed; absent when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DrillReport {
    /// `Succeeded` or `Failed`.
    pub fn outcome(&self) -> &'static str {
        if self.error.is_none() {
            "Succeeded"
        } else {
            "Failed"
        }
    }
}

/// Why a drill could not start or clean up (a failed restore is a report, not this).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// The scratch bucket exists already, or held objects the drill did not write.
    #[error("{0}; nothing was restored into or deleted from it")]
    ScratchInUse(String),
    /// A store call failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

/// Runs the drill. `source` reaches the backup bucket, `target` the scratch bucket (and
/// KMS). Returns the report, failed or not; `Err` only when nothing was restored.
pub async fn drill(
    source: &Cloud,
    target: &Cloud,
    plan: &DrillPlan,
) -> Result<DrillReport, DrillError> {
    let mut report = DrillReport {
        scratch_bucket: plan.scratch_bucket.clone(),
        scratch_bucket_kept: plan.keep,
        ..Default::default()
    };
    if let Some(prefix) = &plan.sweep_prefix {
        report.leftovers_removed = sweep(target, &plan.tenant, prefix).await?;
    }
    make_scratch(target, &plan.tenant, &plan.scratch_bucket).await?;
    let restored = restore(
        source,
        target,
        &plan.backup_bucket,
        &plan.tenant,
        plan.backup_id.as_deref(),
        &plan.scratch_bucket,
    )
    .await;
    match restored {
        Ok((restored, keys)) => {
            report.backup = restored.backup;
            report.objects = restored.restored.len();
            report.missing = restored.missing;
            report.mismatched = restored.mismatched;
            report.key_versions = restored.key_versions;
            report.error = judge(&report, &keys);
            if report.error.is_none() {
                match open_sample(target, plan, &restored.restored, &keys).await {
                    Ok(sample) => report.sample = sample,
                    Err(e) => report.error = Some(e),
                }
            }
        }
        Err(e) => report.error = Some(e.to_string()),
    }
    if !plan.keep {
        report.scratch_versions_deleted = remove_bucket(target, &plan.scratch_bucket).await?;
    }
    Ok(report)
}

fn judge(report: &DrillReport, keys: &BTreeMap<String, ByteString>) -> Option<String> {
    if !report.mismatched.is_empty() {
        return Some(format!(
            "backup {}: {} object(s) do not match their SHA-256: {}",
            report.backup,
            report.mismatched.len(),
            report.mismatched.join(", ")
        ));
    }
    if !report.missing.is_empty() {
        return Some(format!(
            "backup {}: {} object(s) missing from the backup bucket: {}",
            report.backup,
            report.missing.len(),
            report.missing.join(", ")
        ));
    }
    if keys.is_empty() {
        return Some(format!(
            "backup {} carries no wrapped key: its recordings cannot be opened",
            report.backup
        ));
    }
    None
}

/// Opens the first restored object that is a sealed recording, end to end. `Ok(None)`
/// when there is nothing to open (no recordings, or no key access asked for).
async fn open_sample(
    target: &Cloud,
    plan: &DrillPlan,
    restored: &[String],
    keys: &BTreeMap<String, ByteString>,
) -> Result<Option<Sample>, String> {
    if matches!(plan.opener, Opener::Skip) || restored.is_empty() {
        return Ok(None);
    }
    for key in restored {
        let head = target
            .s3
            .get_object()
            .bucket(&plan.scratch_bucket)
            .key(key)
            .range(format!("bytes=0-{}", seal::MAGIC.len() - 1))
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("GetObject", &e).to_string())?
            .body
            .collect()
            .await
            .map_err(|e| format!("reading {key}: {e}"))?
            .into_bytes();
        if head.as_ref() == seal::MAGIC {
            return open_one(target, plan, key, keys).await.map(Some);
        }
    }
    Err(format!(
        "none of the {} restored object(s) is a sealed recording",
        restored.len()
    ))
}

async fn open_one(
    target: &Cloud,
    plan: &DrillPlan,
    key: &str,
    keys: &BTreeMap<String, ByteString>,
) -> Result<Sample, String> {
    let object = target
        .s3
        .get_object()
        .bucket(&plan.scratch_bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("GetObject", &e).to_string())?;
    let reader = tokio_util::io::SyncIoBridge::new(object.body.into_async_read());
    let (header, raw, reader) = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        seal::read_header_from(&mut reader).map(|(h, raw)| (h, raw, reader))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("{key}: {e}"))?;
    if header.tenant != plan.tenant {
        return Err(format!(
            "{key} is sealed for tenant {:?}, not {:?}",
            header.tenant, plan.tenant
        ));
    }
    let version = header.key_version;
    let wrapped = keys.get(&format!("v{version}")).ok_or_else(|| {
        format!("{key} is wrapped by tenant key version {version}, which the backup does not carry")
    })?;
    let tenant_key = unwrap(target, plan, &wrapped.0)
        .await
        .map_err(|e| format!("unwrapping tenant key version {version}: {e}"))?;
    let opened = tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        seal::open_to(&tenant_key, header, &raw, &mut reader, &mut std::io::sink())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("{key} does not open: {e}"))?;
    Ok(Sample {
        key: key.to_string(),
        key_version: version,
        chunks: opened.chunks,
        bytes: opened.bytes,
    })
}

async fn unwrap(
    target: &Cloud,
    plan: &DrillPlan,
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>, String> {
    match &plan.opener {
        Opener::Kms { uid } => sanctum_cloud::kms::unwrap(
            &target.kms,
            wrapped,
            KeyContext {
                tenant: &plan.tenant,
                uid,
            },
        )
        .await
        .map_err(|e| e.to_string()),
        Opener::Local { master } => {
            sanctum_keywrap::unwrap_local(master, wrapped, &plan.tenant).map_err(|e| e.to_string())
        }
        Opener::Skip => Err("no key access".into()),
    }
}

/// Makes the scratch bucket: new, tagged as this tenant's drill, and empty.
async fn make_scratch(target: &Cloud, tenant: &str, bucket: &str) -> Result<(), DrillError> {
    if target.s3.head_bucket().bucket(bucket).send().await.is_ok() {
        return Err(DrillError::ScratchInUse(format!(
            "scratch bucket {bucket} exists; a drill restores into a new bucket only"
        )));
    }
    target
        .s3
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("CreateBucket", &e))?;
    // In us-east-1 CreateBucket also succeeds on a bucket the caller already owns, so one
    // made by someone else between the check above and the call would pass unnoticed: the
    // drill goes on (and later empties the bucket) only when it holds nothing.
    let present = objects::list_keys(&target.s3, bucket, "").await?;
    if !present.is_empty() {
        return Err(DrillError::ScratchInUse(format!(
            "scratch bucket {bucket} appeared with {} object(s) before the drill wrote any",
            present.len()
        )));
    }
    let tag = Tag::builder()
        .key(DRILL_TAG)
        .value(tenant)
        .build()
        .map_err(|e| CloudError::other("PutBucketTagging", e.to_string()))?;
    target
        .s3
        .put_bucket_tagging()
        .bucket(bucket)
        .tagging(
            Tagging::builder()
                .tag_set(tag)
                .build()
                .map_err(|e| CloudError::other("PutBucketTagging", e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("PutBucketTagging", &e))?;
    Ok(())
}

/// Empties and deletes `bucket`; returns the object versions deleted.
async fn remove_bucket(target: &Cloud, bucket: &str) -> Result<usize, CloudError> {
    let mut deleted = 0;
    for key in objects::list_keys(&target.s3, bucket, "").await? {
        deleted += objects::delete_all_versions(&target.s3, bucket, &key).await?;
    }
    target
        .s3
        .delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("DeleteBucket", &e))?;
    Ok(deleted)
}

/// Removes the scratch buckets under `prefix` that carry this tenant's drill tag: what a
/// run that crashed before its cleanup left. Buckets without the tag are never touched.
async fn sweep(target: &Cloud, tenant: &str, prefix: &str) -> Result<Vec<String>, CloudError> {
    let listed = target
        .s3
        .list_buckets()
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("ListBuckets", &e))?;
    let mut removed = Vec::new();
    for bucket in listed.buckets().iter().filter_map(|b| b.name()) {
        if !bucket.starts_with(prefix) {
            continue;
        }
        let tags = match target.s3.get_bucket_tagging().bucket(bucket).send().await {
            Ok(t) => t,
            Err(e) => {
                let error = CloudError::from_sdk("GetBucketTagging", &e);
                if error.code.as_deref() == Some("NoSuchTagSet") {
                    continue;
                }
                return Err(error);
            }
        };
        let ours = tags
            .tag_set()
            .iter()
            .any(|t| t.key() == DRILL_TAG && t.value() == tenant);
        if ours {
            remove_bucket(target, bucket).await?;
            removed.push(bucket.to_string());
        }
    }
    Ok(removed)
}

/// Name of a scheduled drill's scratch bucket: the prefix and the run's start, to the
/// second (bucket names are lowercase).
pub fn scratch_name(prefix: &str, at: jiff::Timestamp) -> String {
    format!("{prefix}-{}", at.strftime("%Y%m%dt%H%M%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_are_valid_bucket_names_that_sort_by_time() {
        let at: jiff::Timestamp = "2026-12-07T03:15:09Z".parse().expect("time");
        let name = scratch_name("sanctum-drill-clinic-a", at);
        assert_eq!(name, "sanctum-drill-clinic-a-20261207t031509");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        let later = scratch_name("p", "2026-12-08T00:00:00Z".parse().expect("time"));
        assert!(scratch_name("p", at) < later);
    }

    #[test]
    fn a_drill_fails_on_a_mismatch_a_missing_object_or_no_keys() {
        let keys = BTreeMap::from([("v1".to_string(), ByteString(vec![1]))]);
        let mut report = DrillReport {
            backup: "20261207T031500.000Z".into(),
            objects: 2,
            ..Default::default()
        };
        assert_eq!(judge(&report, &keys), None);
        assert!(
            judge(&report, &BTreeMap::new())
                .expect("fails")
                .contains("no wrapped key")
        );
        report.missing = vec!["recordings/a".into()];
        assert!(judge(&report, &keys).expect("fails").contains("missing"));
        report.mismatched = vec!["recordings/b".into()];
        let error = judge(&report, &keys).expect("fails");
        assert!(error.contains("SHA-256") && error.contains("recordings/b"));
    }
}
