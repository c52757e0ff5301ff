//! The tenant's recordings bucket: private, encrypted, versioned, with retention.
//!
//! Each setting is read first and written only when it differs, so a converged bucket
//! costs reads only, and a setting someone changed by hand is detected and repaired.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
    DefaultRetention, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectLockConfiguration, ObjectLockEnabled,
    ObjectLockRetentionMode, ObjectLockRule, ObjectOwnership, OwnershipControls,
    OwnershipControlsRule, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    VersioningConfiguration,
};
use sanctum_api::{ObjectLockMode, ObjectLockSpec};
use serde_json::Value;

mod claim;
mod policy;

use super::{Cloud, CloudError};
use claim::claim;
pub use policy::policy;

/// Lifecycle rule id the operator owns.
const RETENTION_RULE: &str = "sanctum-retention";
/// A recording upload a lost media node left behind (and the operator could not abort)
/// is removed by the store after this many days, so its parts never linger.
const ABORT_UPLOADS_AFTER_DAYS: i32 = 1;

/// Tag naming the uid of the tenant a bucket belongs to: a bucket is only ever changed
/// when it is new, or carries this tag with the tenant's own uid.
pub use super::keys::TENANT_UID_TAG;
/// Error code of a bucket the tenant may not use (someone else's, the audit bucket, ...).
pub const NOT_OWNED: &str = "BucketNotOwned";

/// What the bucket must look like.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredBucket {
    /// Bucket name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Tenant name (tag).
    pub tenant: String,
    /// Tenant uid (tag): which tenant the bucket belongs to.
    pub tenant_uid: String,
    /// Buckets this tenant may never use, with what they are (the audit bucket, backup
    /// destinations, other tenants' buckets).
    pub reserved: Vec<(String, String)>,
    /// The name comes from the platform's own configuration (the audit bucket), not from a
    /// tenant: an existing bucket of that name is adopted whatever its tags.
    pub configured: bool,
    /// KMS key for default SSE-KMS; `None` uses SSE-S3 (local key provider).
    pub kms_key_arn: Option<String>,
    /// Days before objects expire.
    pub retention_days: i32,
    /// Object Lock, only settable at creation.
    pub object_lock: Option<ObjectLockSpec>,
    /// Objects are written once: the policy refuses a PutObject without `If-None-Match`
    /// (the audit bucket), so not even a writer's credentials can replace an object.
    pub write_once: bool,
}

/// What [`ensure_bucket`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketReport {
    /// The bucket was created by this call.
    pub created: bool,
    /// Settings that differed from the desired ones and were rewritten.
    pub repaired: Vec<&'static str>,
}

/// Default bucket name: the tenant name and a hash of its uid, so it is unique, DNS-safe
/// and the same on every retry (a crashed attempt never leaves a second bucket).
pub fn default_name(tenant: &str, uid: &str) -> String {
    format!(
        "sanctum-{tenant}-{}",
        crate::hash::short_sha256(uid.as_bytes(), 4)
    )
}

/// Creates the bucket if needed and brings every protection to the desired state.
pub async fn ensure_bucket(
    cloud: &Cloud,
    want: &DesiredBucket,
) -> Result<BucketReport, CloudError> {
    let s3 = &cloud.s3;
    let bucket = want.name.as_str();
    let mut report = BucketReport::default();
    claim(cloud, want, &mut report).await?;
    // Block Public Access: all four settings.
    let pab = match s3.get_public_access_block().bucket(bucket).send().await {
        Ok(out) => out.public_access_block_configuration().cloned(),
        Err(e) => missing_ok("GetPublicAccessBlock", &e)?,
    };
    let all_blocked = pab.as_ref().is_some_and(|c| {
        c.block_public_acls() == Some(true)
            && c.ignore_public_acls() == Some(true)
            && c.block_public_policy() == Some(true)
            && c.restrict_public_buckets() == Some(true)
    });
    if !all_blocked {
        s3.put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("PutPublicAccessBlock", &e))?;
        report.repaired.push("public access block");
    }

    // Default encryption: SSE-KMS with the tenant key and bucket keys, or SSE-S3.
    let rule = match s3.get_bucket_encryption().bucket(bucket).send().await {
        Ok(out) => out
            .server_side_encryption_configuration()
            .and_then(|c| c.rules().first().cloned()),
        Err(e) => missing_ok("GetBucketEncryption", &e)?,
    };
    let encryption_ok = rule.as_ref().is_some_and(|r| {
        let default = r.apply_server_side_encryption_by_default();
        match &want.kms_key_arn {
            Some(arn) => {
                default.map(|d| d.sse_algorithm()) == Some(&ServerSideEncryption::AwsKms)
                    && default.and_then(|d| d.kms_master_key_id()) == Some(arn.as_str())
                    && r.bucket_key_enabled() == Some(true)
            }
            None => default.map(|d| d.sse_algorithm()) == Some(&ServerSideEncryption::Aes256),
        }
    });
    if !encryption_ok {
        let by_default = match &want.kms_key_arn {
            Some(arn) => ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::AwsKms)
                .kms_master_key_id(arn),
            None => {
                ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256)
            }
        }
        .build()
        .map_err(|e| CloudError::other("PutBucketEncryption", e.to_string()))?;
        let config = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(by_default)
                    .bucket_key_enabled(want.kms_key_arn.is_some())
                    .build(),
            )
            .build()
            .map_err(|e| CloudError::other("PutBucketEncryption", e.to_string()))?;
        s3.put_bucket_encryption()
            .bucket(bucket)
            .server_side_encryption_configuration(config)
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("PutBucketEncryption", &e))?;
        report.repaired.push("default encryption");
    }

    // Object Ownership: the bucket owner owns every object and ACLs are off, so no
    // uploader (another account's role, a misconfigured client) can keep an object out of
    // the tenant's control or grant access to it through an ACL.
    let enforced = match s3
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => out.ownership_controls().is_some_and(|c| {
            c.rules().len() == 1
                && c.rules()
                    .iter()
                    .all(|r| r.object_ownership() == &ObjectOwnership::BucketOwnerEnforced)
        }),
        Err(e) => missing_ok::<(), _>("GetBucketOwnershipControls", &e)?.is_some(),
    };
    if !enforced {
        s3.put_bucket_ownership_controls()
            .bucket(bucket)
            .ownership_controls(
                OwnershipControls::builder()
                    .rules(
                        OwnershipControlsRule::builder()
                            .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                            .build()
                            .map_err(|e| {
                                CloudError::other("PutBucketOwnershipControls", e.to_string())
                            })?,
                    )
                    .build()
                    .map_err(|e| CloudError::other("PutBucketOwnershipControls", e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("PutBucketOwnershipControls", &e))?;
        report.repaired.push("object ownership");
    }

    // Versioning. Some S3-compatible stores (moto among them) answer with a
    // `GetBucketVersioningResponse` root element the SDK refuses to parse; the status in
    // that document is read from the raw body instead.
    let enabled = match s3.get_bucket_versioning().bucket(bucket).send().await {
        Ok(out) => out.status() == Some(&BucketVersioningStatus::Enabled),
        Err(e) => {
            let error = CloudError::from_sdk("GetBucketVersioning", &e);
            let body = e
                .raw_response()
                .and_then(|r| r.body().bytes())
                .map(String::from_utf8_lossy);
            match body {
                Some(body)
                    if error.code.is_none() && body.contains("GetBucketVersioningResponse") =>
                {
                    body.contains("<Status>Enabled</Status>")
                }
                _ => return Err(error),
            }
        }
    };
    if !enabled {
        s3.put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("PutBucketVersioning", &e))?;
        report.repaired.push("versioning");
    }

    // Retention lifecycle.
    let rules = match s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Some(out.rules().to_vec()),
        Err(e) => missing_ok("GetBucketLifecycleConfiguration", &e)?,
    };
    // Exactly Sanctum's rule: another rule (a shorter expiry someone added) is drift too.
    let lifecycle_ok = rules.as_ref().is_some_and(|rules| {
        rules.len() == 1
            && rules.iter().all(|r| {
                r.id() == Some(RETENTION_RULE)
                    && r.status() == &ExpirationStatus::Enabled
                    && r.filter().is_none_or(|f| {
                        f.prefix().unwrap_or_default().is_empty()
                            && f.tag().is_none()
                            && f.and().is_none()
                            && f.object_size_greater_than().is_none()
                            && f.object_size_less_than().is_none()
                    })
                    && r.transitions().is_empty()
                    && r.noncurrent_version_transitions().is_empty()
                    && r.expiration().and_then(|e| e.date()).is_none()
                    && r.expiration().and_then(|e| e.days()) == Some(want.retention_days)
                    && r.noncurrent_version_expiration()
                        .and_then(|e| e.noncurrent_days())
                        == Some(want.retention_days)
                    && r.abort_incomplete_multipart_upload()
                        .and_then(|a| a.days_after_initiation())
                        == Some(ABORT_UPLOADS_AFTER_DAYS)
            })
    });
    if !lifecycle_ok {
        let rule = LifecycleRule::builder()
            .id(RETENTION_RULE)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .expiration(
                LifecycleExpiration::builder()
                    .days(want.retention_days)
                    .build(),
            )
            .noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(want.retention_days)
                    .build(),
            )
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(ABORT_UPLOADS_AFTER_DAYS)
                    .build(),
            )
            .build()
            .map_err(|e| CloudError::other("PutBucketLifecycleConfiguration", e.to_string()))?;
        s3.put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .rules(rule)
                    .build()
                    .map_err(|e| {
                        CloudError::other("PutBucketLifecycleConfiguration", e.to_string())
                    })?,
            )
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("PutBucketLifecycleConfiguration", &e))?;
        report.repaired.push("retention lifecycle");
    }

    // Bucket policy.
    let wanted_policy = policy(want);
    let current = match s3.get_bucket_policy().bucket(bucket).send().await {
        Ok(out) => out
            .policy()
            .and_then(|p| serde_json::from_str::<Value>(p).ok()),
        Err(e) => missing_ok("GetBucketPolicy", &e)?,
    };
    if current.as_ref() != Some(&wanted_policy) {
        s3.put_bucket_policy()
            .bucket(bucket)
            .policy(wanted_policy.to_string())
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("PutBucketPolicy", &e))?;
        report.repaired.push("bucket policy");
    }

    // Object Lock default retention.
    if let Some(lock) = &want.object_lock {
        let mode = match lock.mode {
            ObjectLockMode::Governance => ObjectLockRetentionMode::Governance,
            ObjectLockMode::Compliance => ObjectLockRetentionMode::Compliance,
        };
        let current = s3
            .get_object_lock_configuration()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("GetObjectLockConfiguration", &e))?;
        let retention = current
            .object_lock_configuration()
            .and_then(|c| c.rule())
            .and_then(|r| r.default_retention());
        if retention.and_then(|r| r.mode()) != Some(&mode)
            || retention.and_then(|r| r.days()) != Some(lock.days)
        {
            s3.put_object_lock_configuration()
                .bucket(bucket)
                .object_lock_configuration(
                    ObjectLockConfiguration::builder()
                        .object_lock_enabled(ObjectLockEnabled::Enabled)
                        .rule(
                            ObjectLockRule::builder()
                                .default_retention(
                                    DefaultRetention::builder()
                                        .mode(mode)
                                        .days(lock.days)
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .map_err(|e| CloudError::from_sdk("PutObjectLockConfiguration", &e))?;
            report.repaired.push("object lock");
        }
    }
    if report.created {
        report.repaired.clear();
    }
    Ok(report)
}

/// `Ok(None)` when the service says the configuration does not exist; the error otherwise.
fn missing_ok<T, E>(operation: &'static str, error: &E) -> Result<Option<T>, CloudError>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error,
{
    let error = CloudError::from_sdk(operation, error);
    if error.is_not_found() {
        Ok(None)
    } else {
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_stable_unique_and_dns_safe() {
        let a = default_name("clinic-a", "6f1e0c1e-0000-4000-8000-000000000001");
        assert_eq!(
            a,
            default_name("clinic-a", "6f1e0c1e-0000-4000-8000-000000000001")
        );
        assert_ne!(
            a,
            default_name("clinic-a", "6f1e0c1e-0000-4000-8000-000000000002")
        );
        let longest = default_name(&"a".repeat(40), "uid");
        assert!(longest.len() <= 63);
        assert!(
            longest
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
