//! The audit bucket: batches of records under Object Lock, written once each.
//!
//! A batch is one object `tenants/<tenant>/<first seq, 20 digits>.jsonl`, so listing a
//! tenant's prefix returns its chain in order. Objects are only ever created with
//! `If-None-Match: *`: two writers that raced for the same sequence numbers (an old
//! leader and a new one) cannot overwrite each other; the loser reloads the head.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectLockMode as S3LockMode;
use sanctum_api::{ObjectLockMode, ObjectLockSpec};

use super::{Batch, Head, Record};
use crate::cloud::buckets::{self, BucketReport, DesiredBucket};
use crate::cloud::{Cloud, CloudError, objects};

/// Six years, the HIPAA documentation retention period (45 CFR 164.316(b)(2)(i)).
pub const DEFAULT_RETENTION_DAYS: i32 = 2192;

/// Key of the batch whose first record is `first_seq`.
pub fn key(tenant: &str, first_seq: u64) -> String {
    format!("{}{first_seq:020}.jsonl", prefix(tenant))
}

/// Prefix of a tenant's batches.
pub fn prefix(tenant: &str) -> String {
    format!("tenants/{tenant}/")
}

/// First sequence number named by a batch key, if it is one of ours.
pub fn first_seq(key: &str) -> Option<u64> {
    key.rsplit('/').next()?.strip_suffix(".jsonl")?.parse().ok()
}

/// What a conditional create found.
#[derive(Debug, PartialEq, Eq)]
pub enum Put {
    /// The object was created.
    Written,
    /// An object of that key already existed; nothing was written.
    Exists,
}

/// The audit bucket.
#[derive(Clone, Debug)]
pub struct AuditStore {
    cloud: Cloud,
    bucket: String,
}

impl AuditStore {
    /// A store over `bucket`, reached with `cloud`'s S3 client.
    pub fn new(cloud: Cloud, bucket: impl Into<String>) -> Self {
        Self {
            cloud,
            bucket: bucket.into(),
        }
    }

    /// Creates the bucket (Object Lock on, compliance mode, `retention_days` default
    /// retention; public access blocked; TLS only; versioned) or repairs its settings.
    pub async fn ensure(&self, retention_days: i32) -> Result<BucketReport, CloudError> {
        buckets::ensure_bucket(
            &self.cloud,
            &DesiredBucket {
                name: self.bucket.clone(),
                region: self.cloud.region.clone(),
                tenant: "sanctum-audit".into(),
                kms_key_arn: None,
                retention_days,
                object_lock: Some(ObjectLockSpec {
                    mode: ObjectLockMode::Compliance,
                    days: retention_days,
                }),
            },
        )
        .await
    }

    /// Every batch key of `tenant`, in chain order.
    pub async fn keys(&self, tenant: &str) -> Result<Vec<String>, CloudError> {
        let mut keys = objects::list_keys(&self.cloud, &self.bucket, &prefix(tenant)).await?;
        keys.retain(|k| first_seq(k).is_some());
        Ok(keys)
    }

    /// Reads one batch.
    pub async fn read(&self, key: &str) -> Result<Batch, CloudError> {
        let bytes = objects::get_bytes(&self.cloud, &self.bucket, key).await?;
        Ok(Batch {
            key: key.to_string(),
            first_seq: first_seq(key).unwrap_or_default(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// Reads a tenant's whole chain, in order.
    pub async fn chain(&self, tenant: &str) -> Result<Vec<Batch>, CloudError> {
        let mut batches = Vec::new();
        for key in self.keys(tenant).await? {
            batches.push(self.read(&key).await?);
        }
        Ok(batches)
    }

    /// Where `tenant`'s chain ends, from its last batch (the empty head if it has none).
    pub async fn head(&self, tenant: &str) -> Result<Head, CloudError> {
        let Some(last) = self.keys(tenant).await?.pop() else {
            return Ok(Head::default());
        };
        let batch = self.read(&last).await?;
        let record = batch
            .body
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| serde_json::from_str::<Record>(l).ok())
            .ok_or_else(|| {
                CloudError::other(
                    "GetObject",
                    format!("{last} does not end with an audit record; run `audit verify`"),
                )
            })?;
        Ok(Head {
            seq: record.seq,
            hash: record.hash,
        })
    }

    /// Creates `key` with `body` unless it exists. The bucket's default retention locks it.
    pub async fn put_new(&self, key: &str, body: String) -> Result<Put, CloudError> {
        let sent = self
            .cloud
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .content_type("application/x-ndjson")
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body.into_bytes()))
            .send()
            .await;
        Ok(match objects::unless_precondition_failed(sent)? {
            Some(_) => Put::Written,
            None => Put::Exists,
        })
    }

    /// The Object Lock mode and retain-until date of the current version of `key`.
    pub async fn retention(
        &self,
        key: &str,
    ) -> Result<(Option<S3LockMode>, Option<String>), CloudError> {
        let out = self
            .cloud
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("HeadObject", &e))?;
        Ok((
            out.object_lock_mode().cloned(),
            out.object_lock_retain_until_date().map(|d| d.to_string()),
        ))
    }
}
