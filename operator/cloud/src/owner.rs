//! `ExpectedBucketOwner` on every S3 request, added in one place.
//!
//! Bucket names are global: a bucket of the name we expect can belong to another account,
//! made before ours ("bucket sniping") or after ours was deleted, and may well let us
//! write. S3 refuses a request with 403 when the bucket's owner is not the account named
//! in `x-amz-expected-bucket-owner`, so every request carries it; a copy also names the
//! owner of its source (`x-amz-source-expected-bucket-owner`). An interceptor on the
//! client does this, not each call site, so a call added later cannot forget it.

use std::collections::BTreeMap;

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::endpoint::EndpointResolverParams;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// Header naming the account that must own the request's bucket.
pub const EXPECTED_OWNER: &str = "x-amz-expected-bucket-owner";
/// Header naming the account that must own a copy's source bucket.
pub const EXPECTED_SOURCE_OWNER: &str = "x-amz-source-expected-bucket-owner";

/// Operations S3 does not accept an expected owner on: they create a bucket or name none.
const WITHOUT_OWNER: &[&str] = &[
    "CreateBucket",
    "ListBuckets",
    "ListDirectoryBuckets",
    "CreateSession",
    "WriteGetObjectResponse",
    "RenameObject",
];

/// The account that owns every bucket, with per-bucket exceptions (a backup bucket in a
/// second account).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketOwners {
    default: String,
    exceptions: BTreeMap<String, String>,
}

fn account_id(account: &str) -> Result<String, String> {
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(account.to_string())
    } else {
        Err(format!("{account:?} is not an AWS account id (12 digits)"))
    }
}

impl BucketOwners {
    /// Every bucket belongs to `account`.
    pub fn new(account: &str) -> Result<Self, String> {
        Ok(Self {
            default: account_id(account)?,
            exceptions: BTreeMap::new(),
        })
    }

    /// `bucket` belongs to `account` instead.
    pub fn with(mut self, bucket: &str, account: &str) -> Result<Self, String> {
        if bucket.is_empty() {
            return Err("a bucket owner exception names no bucket".into());
        }
        self.exceptions
            .insert(bucket.to_string(), account_id(account)?);
        Ok(self)
    }

    /// The account that must own `bucket`.
    pub fn of(&self, bucket: &str) -> &str {
        self.exceptions.get(bucket).unwrap_or(&self.default)
    }

    /// The account of every bucket without an exception (what child processes are told).
    pub fn default_account(&self) -> &str {
        &self.default
    }

    /// The exceptions as `bucket=account`, for passing on to child processes.
    pub fn exceptions(&self) -> impl Iterator<Item = String> + '_ {
        self.exceptions.iter().map(|(b, a)| format!("{b}={a}"))
    }
}

/// The interceptor [`crate::Clients::connect`] installs on the S3 client. Without owners
/// (the account could not be learnt) it refuses every request that names a bucket.
#[derive(Debug)]
pub(crate) struct ExpectBucketOwner {
    owners: Option<BucketOwners>,
}

impl ExpectBucketOwner {
    pub(crate) fn new(owners: Option<BucketOwners>) -> Self {
        Self { owners }
    }
}

/// The bucket of a copy source header (`bucket/key`, `/bucket/key` or an access point
/// ARN, URL-encoded, optionally with `?versionId=`).
fn source_bucket(copy_source: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(copy_source)
        .decode_utf8()
        .ok()?;
    let path = decoded.trim_start_matches('/');
    if path.starts_with("arn:") {
        return None;
    }
    path.split_once('/').map(|(bucket, _)| bucket.to_string())
}

impl Intercept for ExpectBucketOwner {
    fn name(&self) -> &'static str {
        "ExpectBucketOwner"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(Metadata::name)
            .unwrap_or_default();
        if WITHOUT_OWNER.contains(&operation) {
            return Ok(());
        }
        let bucket = cfg
            .load::<EndpointResolverParams>()
            .and_then(|p| p.get::<aws_sdk_s3::config::endpoint::Params>())
            .and_then(|p| p.bucket())
            .map(str::to_string);
        let Some(owners) = &self.owners else {
            return Err(format!(
                "{operation} refused: the AWS account that must own the buckets is unknown (STS GetCallerIdentity failed at start); set --aws-account-id"
            )
            .into());
        };
        let headers = context.request_mut().headers_mut();
        if let Some(bucket) = bucket {
            headers.try_insert(EXPECTED_OWNER, owners.of(&bucket).to_string())?;
        }
        if let Some(source) = headers.get("x-amz-copy-source").and_then(source_bucket) {
            headers.try_insert(EXPECTED_SOURCE_OWNER, owners.of(&source).to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_name_their_bucket() {
        assert_eq!(
            source_bucket("tenant-a/recordings/x.sealed").as_deref(),
            Some("tenant-a")
        );
        assert_eq!(
            source_bucket("/tenant-a/recordings%2Fx.sealed?versionId=3").as_deref(),
            Some("tenant-a")
        );
        assert_eq!(
            source_bucket("arn:aws:s3:us-east-1:1:accesspoint/a/object/k"),
            None
        );
        assert_eq!(source_bucket("no-key"), None);
    }

    #[test]
    fn exceptions_name_their_own_account() {
        let owners = BucketOwners::new("123456789012")
            .and_then(|o| o.with("dr-backups", "210987654321"))
            .expect("valid");
        assert_eq!(owners.of("sanctum-clinic-a"), "123456789012");
        assert_eq!(owners.of("dr-backups"), "210987654321");
        assert_eq!(
            owners.exceptions().collect::<Vec<_>>(),
            ["dr-backups=210987654321"]
        );
        assert!(BucketOwners::new("12345678901x").is_err());
        assert!(
            BucketOwners::new("123456789012")
                .and_then(|o| o.with("", "123456789012"))
                .is_err()
        );
    }
}
