//! A bucket's protections as S3 reports them, and how each compares with what the tenant's
//! spec asks for: the one judgement both the reconcile (which repairs what differs) and the
//! evidence report (which shows it to an auditor) use.

use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, ExpirationStatus, LifecycleRule,
    ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectOwnership,
    OwnershipControls, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionRule,
};
use sanctum_api::ObjectLockMode;
use serde::Serialize;
use serde_json::{Value, json};

use super::{ABORT_UPLOADS_AFTER_DAYS, DesiredBucket, RETENTION_RULE, missing_ok, policy};
use crate::cloud::{Cloud, CloudError};

/// Setting names, as repairs and the evidence report name them.
pub const PUBLIC_ACCESS: &str = "public access block";
/// Default encryption (SSE-KMS under the tenant key, or SSE-S3).
pub const ENCRYPTION: &str = "default encryption";
/// Object Ownership `BucketOwnerEnforced` (no ACLs).
pub const OWNERSHIP: &str = "object ownership";
/// Versioning enabled.
pub const VERSIONING: &str = "versioning";
/// Sanctum's one retention lifecycle rule.
pub const LIFECYCLE: &str = "retention lifecycle";
/// The bucket policy (TLS only, no foreign encryption).
pub const POLICY: &str = "bucket policy";
/// Object Lock default retention.
pub const OBJECT_LOCK: &str = "object lock";

/// What S3 says about a bucket's protections, read with GET calls only.
#[derive(Clone, Debug, Default)]
pub struct Posture {
    /// Block Public Access, `None` when the bucket has none.
    pub public_access: Option<PublicAccessBlockConfiguration>,
    /// The first default-encryption rule.
    pub encryption: Option<ServerSideEncryptionRule>,
    /// Object Ownership controls.
    pub ownership: Option<OwnershipControls>,
    /// Versioning is `Enabled`.
    pub versioning: bool,
    /// Lifecycle rules, `None` when the bucket has no lifecycle configuration.
    pub lifecycle: Option<Vec<LifecycleRule>>,
    /// The bucket policy document.
    pub policy: Option<Value>,
    /// Object Lock configuration, when it was read and the bucket has one.
    pub object_lock: Option<ObjectLockConfiguration>,
}

/// One setting's verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// Which setting ([`PUBLIC_ACCESS`], ...).
    pub setting: &'static str,
    /// It is what the spec asks for.
    pub ok: bool,
    /// What S3 reported, for a person to read.
    pub observed: Value,
}

/// `bucket`'s Object Lock configuration; `None` when it has none.
pub async fn read_object_lock(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Option<ObjectLockConfiguration>, CloudError> {
    match s3
        .get_object_lock_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Ok(out.object_lock_configuration().cloned()),
        Err(e) => {
            let error = CloudError::from_sdk("GetObjectLockConfiguration", &e);
            if error.code.as_deref() == Some("ObjectLockConfigurationNotFoundError")
                || error.is_not_found()
            {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

/// The default retention that locks every version written to a bucket, or what the
/// bucket lacks for one (a backup bucket must keep what it holds).
pub fn default_retention(
    lock: Option<&ObjectLockConfiguration>,
) -> Result<&DefaultRetention, &'static str> {
    match lock {
        Some(c) if c.object_lock_enabled() == Some(&ObjectLockEnabled::Enabled) => c
            .rule()
            .and_then(|r| r.default_retention())
            .ok_or("has Object Lock but no default retention"),
        _ => Err("has no Object Lock"),
    }
}

/// Reads every protection of `want.name`; Object Lock only with `read_lock` (S3 answers
/// an error for a bucket made without it, and a reconcile that wants none need not ask).
pub async fn inspect(
    cloud: &Cloud,
    want: &DesiredBucket,
    read_lock: bool,
) -> Result<Posture, CloudError> {
    let s3 = &cloud.s3;
    let bucket = want.name.as_str();
    let public_access = match s3.get_public_access_block().bucket(bucket).send().await {
        Ok(out) => out.public_access_block_configuration().cloned(),
        Err(e) => missing_ok("GetPublicAccessBlock", &e)?,
    };
    let encryption = match s3.get_bucket_encryption().bucket(bucket).send().await {
        Ok(out) => out
            .server_side_encryption_configuration()
            .and_then(|c| c.rules().first().cloned()),
        Err(e) => missing_ok("GetBucketEncryption", &e)?,
    };
    let ownership = match s3
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => out.ownership_controls().cloned(),
        Err(e) => missing_ok("GetBucketOwnershipControls", &e)?,
    };
    // Some S3-compatible stores (moto among them) answer with a
    // `GetBucketVersioningResponse` root element the SDK refuses to parse; the status in
    // that document is read from the raw body instead.
    let versioning = match s3.get_bucket_versioning().bucket(bucket).send().await {
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
    let lifecycle = match s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Some(out.rules().to_vec()),
        Err(e) => missing_ok("GetBucketLifecycleConfiguration", &e)?,
    };
    let policy = match s3.get_bucket_policy().bucket(bucket).send().await {
        Ok(out) => out
            .policy()
            .and_then(|p| serde_json::from_str::<Value>(p).ok()),
        Err(e) => missing_ok("GetBucketPolicy", &e)?,
    };
    let object_lock = if read_lock {
        read_object_lock(s3, bucket).await?
    } else {
        None
    };
    Ok(Posture {
        public_access,
        encryption,
        ownership,
        versioning,
        lifecycle,
        policy,
        object_lock,
    })
}

impl Posture {
    /// Every setting's verdict against `want`; Object Lock only when `want` asks for it or
    /// it was read.
    pub fn checks(&self, want: &DesiredBucket) -> Vec<Check> {
        let mut checks = vec![
            self.public_access_check(),
            self.encryption_check(want),
            self.ownership_check(),
            Check {
                setting: VERSIONING,
                ok: self.versioning,
                observed: json!(if self.versioning {
                    "Enabled"
                } else {
                    "not enabled"
                }),
            },
            self.lifecycle_check(want),
            self.policy_check(want),
        ];
        if want.object_lock.is_some() || self.object_lock.is_some() {
            checks.push(self.lock_check(want));
        }
        checks
    }

    fn public_access_check(&self) -> Check {
        let c = self.public_access.as_ref();
        let flag =
            |f: fn(&PublicAccessBlockConfiguration) -> Option<bool>| c.and_then(f).unwrap_or(false);
        let flags = [
            ("BlockPublicAcls", flag(|c| c.block_public_acls())),
            ("IgnorePublicAcls", flag(|c| c.ignore_public_acls())),
            ("BlockPublicPolicy", flag(|c| c.block_public_policy())),
            (
                "RestrictPublicBuckets",
                flag(|c| c.restrict_public_buckets()),
            ),
        ];
        Check {
            setting: PUBLIC_ACCESS,
            ok: flags.iter().all(|(_, on)| *on),
            observed: flags
                .iter()
                .map(|(name, on)| ((*name).to_string(), json!(on)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }

    fn encryption_check(&self, want: &DesiredBucket) -> Check {
        let rule = self.encryption.as_ref();
        let default = rule.and_then(|r| r.apply_server_side_encryption_by_default());
        let algorithm = default.map(|d| d.sse_algorithm());
        let key = default.and_then(|d| d.kms_master_key_id());
        let bucket_key = rule.and_then(|r| r.bucket_key_enabled()) == Some(true);
        let ok = match &want.kms_key_arn {
            Some(arn) => {
                algorithm == Some(&ServerSideEncryption::AwsKms)
                    && key == Some(arn.as_str())
                    && bucket_key
            }
            None => algorithm == Some(&ServerSideEncryption::Aes256),
        };
        Check {
            setting: ENCRYPTION,
            ok,
            observed: json!({
                "algorithm": algorithm.map(|a| a.as_str()),
                "kmsKeyId": key,
                "bucketKeyEnabled": bucket_key,
            }),
        }
    }

    fn ownership_check(&self) -> Check {
        let rules: Vec<&str> = self
            .ownership
            .as_ref()
            .map(|c| {
                c.rules()
                    .iter()
                    .map(|r| r.object_ownership().as_str())
                    .collect()
            })
            .unwrap_or_default();
        Check {
            setting: OWNERSHIP,
            ok: rules == [ObjectOwnership::BucketOwnerEnforced.as_str()],
            observed: json!(rules),
        }
    }

    fn lifecycle_check(&self, want: &DesiredBucket) -> Check {
        // Exactly Sanctum's rule: another rule (a shorter expiry someone added) is drift too.
        let ok = self.lifecycle.as_ref().is_some_and(|rules| {
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
        let observed: Vec<Value> = self
            .lifecycle
            .iter()
            .flatten()
            .map(|r| {
                json!({
                    "id": r.id(),
                    "status": r.status().as_str(),
                    "expirationDays": r.expiration().and_then(|e| e.days()),
                    "noncurrentVersionExpirationDays":
                        r.noncurrent_version_expiration().and_then(|e| e.noncurrent_days()),
                    "abortIncompleteUploadsDays":
                        r.abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation()),
                })
            })
            .collect();
        Check {
            setting: LIFECYCLE,
            ok,
            observed: json!(observed),
        }
    }

    fn policy_check(&self, want: &DesiredBucket) -> Check {
        let sids: Vec<&str> = self
            .policy
            .as_ref()
            .and_then(|p| p.get("Statement"))
            .and_then(Value::as_array)
            .map(|s| s.iter().filter_map(|s| s.get("Sid")?.as_str()).collect())
            .unwrap_or_default();
        Check {
            setting: POLICY,
            ok: self.policy.as_ref() == Some(&policy(want)),
            observed: json!({ "statements": sids }),
        }
    }

    fn lock_check(&self, want: &DesiredBucket) -> Check {
        let enabled = self
            .object_lock
            .as_ref()
            .and_then(|c| c.object_lock_enabled())
            .is_some();
        let retention = self
            .object_lock
            .as_ref()
            .and_then(|c| c.rule())
            .and_then(|r| r.default_retention());
        let mode = retention.and_then(|r| r.mode());
        let days = retention.and_then(|r| r.days());
        let ok = match &want.object_lock {
            Some(lock) => mode == Some(&retention_mode(lock.mode)) && days == Some(lock.days),
            // Not asked for: a lock someone added is no weaker, so it is not a failure.
            None => true,
        };
        Check {
            setting: OBJECT_LOCK,
            ok,
            observed: json!({
                "enabled": enabled,
                "mode": mode.map(|m| m.as_str()),
                "days": days,
            }),
        }
    }
}

/// S3's retention mode for the spec's Object Lock mode.
pub fn retention_mode(mode: ObjectLockMode) -> ObjectLockRetentionMode {
    match mode {
        ObjectLockMode::Governance => ObjectLockRetentionMode::Governance,
        ObjectLockMode::Compliance => ObjectLockRetentionMode::Compliance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(kms: Option<&str>) -> DesiredBucket {
        DesiredBucket {
            name: "b".into(),
            region: "us-east-1".into(),
            tenant: "t".into(),
            tenant_uid: "u".into(),
            reserved: vec![],
            configured: false,
            kms_key_arn: kms.map(str::to_string),
            retention_days: 30,
            object_lock: None,
            write_once: false,
        }
    }

    #[test]
    fn a_bucket_with_nothing_set_fails_every_check_but_the_lock() {
        let checks = Posture::default().checks(&want(Some("arn:k")));
        let failing: Vec<_> = checks.iter().filter(|c| !c.ok).map(|c| c.setting).collect();
        assert_eq!(
            failing,
            [
                PUBLIC_ACCESS,
                ENCRYPTION,
                OWNERSHIP,
                VERSIONING,
                LIFECYCLE,
                POLICY
            ]
        );
    }

    #[test]
    fn one_public_access_flag_off_is_named_and_fails() {
        let posture = Posture {
            public_access: Some(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(false)
                    .restrict_public_buckets(true)
                    .build(),
            ),
            ..Default::default()
        };
        let check = &posture.checks(&want(None))[0];
        assert_eq!(check.setting, PUBLIC_ACCESS);
        assert!(!check.ok);
        assert_eq!(check.observed["BlockPublicPolicy"], json!(false));
        assert_eq!(check.observed["BlockPublicAcls"], json!(true));
    }

    #[test]
    fn the_desired_policy_passes_and_a_changed_one_fails() {
        let w = want(Some("arn:k"));
        let mut posture = Posture {
            policy: Some(policy(&w)),
            ..Default::default()
        };
        let check = |p: &Posture| p.checks(&w).into_iter().find(|c| c.setting == POLICY);
        assert!(check(&posture).is_some_and(|c| c.ok));
        posture
            .policy
            .as_mut()
            .map(|p| p["Statement"].as_array_mut().map(|s| s.pop()));
        assert!(check(&posture).is_some_and(|c| !c.ok));
    }
}
