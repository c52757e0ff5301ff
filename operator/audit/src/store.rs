//! The audit bucket: chains of batch objects, created once and never overwritten.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectLockMode;

use sanctum_cloud::objects::{get_bytes, list_keys, unless_precondition_failed, version_pages};

use crate::{Batch, CloudError, Head, NODES, Record, first_seq};

/// Six years, the HIPAA documentation retention period (45 CFR 164.316(b)(2)(i)).
pub const DEFAULT_RETENTION_DAYS: i32 = 2192;

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
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl AuditStore {
    /// A store over `bucket`, reached with `s3`.
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            s3,
            bucket: bucket.into(),
        }
    }

    /// Every batch key of the chain at `prefix`, in chain order.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, CloudError> {
        let mut keys = list_keys(&self.s3, &self.bucket, prefix).await?;
        keys.retain(|k| first_seq(prefix, k).is_some());
        Ok(keys)
    }

    /// Reads one batch of the chain at `prefix`.
    pub async fn read(&self, prefix: &str, key: &str) -> Result<Batch, CloudError> {
        let bytes = get_bytes(&self.s3, &self.bucket, key).await?;
        Ok(Batch {
            key: key.to_string(),
            first_seq: first_seq(prefix, key).unwrap_or_default(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// Reads the whole chain at `prefix`, in order.
    pub async fn chain(&self, prefix: &str) -> Result<Vec<Batch>, CloudError> {
        let mut batches = Vec::new();
        for key in self.keys(prefix).await? {
            batches.push(self.read(prefix, &key).await?);
        }
        Ok(batches)
    }

    /// The media nodes that wrote a session chain for `tenant`, by name.
    pub async fn nodes(&self, tenant: &str) -> Result<Vec<String>, CloudError> {
        let under = format!(
            "{}{NODES}/",
            crate::chain_prefix(tenant, crate::Chain::Reconciles)
        );
        let mut nodes: Vec<String> = list_keys(&self.s3, &self.bucket, &under)
            .await?
            .iter()
            .filter_map(|k| k.strip_prefix(&under)?.split_once('/'))
            .map(|(node, _)| node.to_string())
            .collect();
        nodes.dedup();
        Ok(nodes)
    }

    /// Keys under `prefix` whose current version is a delete marker: objects someone
    /// deleted. Object Lock keeps their versions, but a whole chain hidden this way would
    /// otherwise look like a chain that never existed.
    pub async fn deleted(&self, prefix: &str) -> Result<Vec<String>, CloudError> {
        let mut deleted: Vec<String> = version_pages(&self.s3, &self.bucket, prefix)
            .await?
            .iter()
            .flat_map(|page| page.delete_markers())
            .filter(|m| m.is_latest() == Some(true))
            .filter_map(|m| m.key())
            .map(str::to_string)
            .collect();
        deleted.sort();
        Ok(deleted)
    }

    /// Keys under `prefix` with more than one object version, and how many: an audit
    /// object is written once (`If-None-Match`), so a second version is an overwrite. Object
    /// Lock keeps every version, so the original stays readable, but the current one is
    /// what readers see; a tail rewritten with recomputed hashes would otherwise verify.
    pub async fn overwritten(&self, prefix: &str) -> Result<Vec<(String, usize)>, CloudError> {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for page in version_pages(&self.s3, &self.bucket, prefix).await? {
            for version in page.versions() {
                if let Some(key) = version.key() {
                    *counts.entry(key.to_string()).or_default() += 1;
                }
            }
        }
        Ok(counts.into_iter().filter(|(_, n)| *n > 1).collect())
    }

    /// Where the chain at `prefix` ends, from its last batch (the empty head if none).
    pub async fn head(&self, prefix: &str) -> Result<Head, CloudError> {
        let Some(last) = self.keys(prefix).await?.pop() else {
            return Ok(Head::default());
        };
        let batch = self.read(prefix, &last).await?;
        let (records, _) = crate::split_signed(&batch.body);
        let record = records
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
        Ok(match unless_precondition_failed(sent)? {
            Some(_) => Put::Written,
            None => Put::Exists,
        })
    }

    /// The Object Lock mode and retain-until date of the current version of `key`.
    pub async fn retention(
        &self,
        key: &str,
    ) -> Result<(Option<ObjectLockMode>, Option<String>), CloudError> {
        let out = self
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
