//! The tenant's recordings bucket: private, encrypted, versioned, with retention.
//!
//! Each setting is read first and written only when it differs, so a converged bucket
//! costs reads only, and a setting someone changed by hand is detected and repaired.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
    DefaultRetention, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRule,
    ObjectOwnership, OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule, VersioningConfiguration,
};
use sanctum_api::ObjectLockSpec;

mod claim;
mod policy;
pub mod posture;

use super::{Cloud, CloudError};
use claim::claim;
pub use policy::policy;
pub use posture::{Check, Posture, inspect};

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
    let found = inspect(cloud, want, want.object_lock.is_some()).await?;
    let checks = found.checks(want);
    let wrong = |setting: &str| checks.iter().any(|c| c.setting == setting && !c.ok);

    if wrong(posture::PUBLIC_ACCESS) {
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
        report.repaired.push(posture::PUBLIC_ACCESS);
    }

    // Default encryption: SSE-KMS with the tenant key and bucket keys, or SSE-S3.
    if wrong(posture::ENCRYPTION) {
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
        report.repaired.push(posture::ENCRYPTION);
    }

    // Object Ownership: the bucket owner owns every object and ACLs are off, so no
    // uploader (another account's role, a misconfigured client) can keep an object out of
    // the tenant's control or grant access to it through an ACL.
    if wrong(posture::OWNERSHIP) {
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
        report.repaired.push(posture::OWNERSHIP);
    }

    if wrong(posture::VERSIONING) {
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
        report.repaired.push(posture::VERSIONING);
    }

    // Retention lifecycle: exactly Sanctum's rule.
    if wrong(posture::LIFECYCLE) {
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
        report.repaired.push(posture::LIFECYCLE);
    }

    if wrong(posture::POLICY) {
        s3.put_bucket_policy()
            .bucket(bucket)
            .policy(policy(want).to_string())
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("PutBucketPolicy", &e))?;
        report.repaired.push(posture::POLICY);
    }

    // Object Lock default retention.
    if let (Some(lock), true) = (&want.object_lock, wrong(posture::OBJECT_LOCK)) {
        let mode = posture::retention_mode(lock.mode);
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
        report.repaired.push(posture::OBJECT_LOCK);
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
