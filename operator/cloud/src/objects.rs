//! S3 objects: listing (every page), whole reads, conditional writes, checksums, disposal
//! of every version, and leftover uploads. Shared by the operator, the audit trail and
//! backups; the bucket-owner check rides on the client ([`crate::owner`]).

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput;
use aws_sdk_s3::operation::put_object::{PutObjectError, PutObjectOutput};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use sha2::{Digest, Sha256};

use crate::{CloudError, Result};

/// Object metadata naming the version a restored object was copied back from.
pub const RESTORED_FROM_VERSION: &str = "sanctum-restored-from-version";

/// Every page of `ListObjectVersions` under `prefix` (the SDK has no paginator for it:
/// pages continue from a key and version marker).
pub async fn version_pages(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<ListObjectVersionsOutput>> {
    let mut pages = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("ListObjectVersions", &e))?;
        let more = page.is_truncated() == Some(true);
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
        pages.push(page);
        if !more {
            return Ok(pages);
        }
    }
}

/// Every key under `prefix` in `bucket`, sorted.
pub async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| CloudError::from_sdk("ListObjectsV2", &e))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                .map(str::to_string),
        );
    }
    keys.sort();
    Ok(keys)
}

/// The current version of a small object (a manifest, an audit batch), read whole.
pub async fn get_bytes(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("GetObject", &e))?;
    Ok(out
        .body
        .collect()
        .await
        .map_err(|e| CloudError::other("GetObject", e.to_string()))?
        .into_bytes()
        .to_vec())
}

/// The outcome of a conditional PutObject (`If-None-Match` / `If-Match`): `Ok(None)` when
/// the condition failed (412), so the caller can tell "someone else got there" from errors.
pub fn unless_precondition_failed(
    sent: Result<PutObjectOutput, SdkError<PutObjectError>>,
) -> Result<Option<PutObjectOutput>> {
    match sent {
        Ok(out) => Ok(Some(out)),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            let error = CloudError::from_sdk("PutObject", &e);
            if status == Some(412) || error.code.as_deref() == Some("PreconditionFailed") {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

/// Hex SHA-256 and size of an object version, read in full (streamed, never stored).
pub async fn sha256(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<(String, i64)> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version_id.map(str::to_string))
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("GetObject", &e))?;
    let mut body = out.body;
    let mut hasher = Sha256::new();
    let mut size = 0i64;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| CloudError::other("GetObject", e.to_string()))?
    {
        size += chunk.len() as i64;
        hasher.update(&chunk);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Deletes every version and delete marker of `key` (disposal in a versioned bucket:
/// deleting only the latest would leave the recording recoverable), over every page of
/// the listing and in batches of 1,000 (the DeleteObjects limit). Returns how many.
pub async fn delete_all_versions(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<usize> {
    let pages = version_pages(s3, bucket, key).await?;
    let mut ids = Vec::new();
    for page in &pages {
        let versions = page
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .map(|v| v.version_id().map(str::to_string));
        let markers = page
            .delete_markers()
            .iter()
            .filter(|m| m.key() == Some(key))
            .map(|m| m.version_id().map(str::to_string));
        for version in versions.chain(markers) {
            ids.push(
                ObjectIdentifier::builder()
                    .key(key)
                    .set_version_id(version)
                    .build()
                    .map_err(|e| CloudError::other("DeleteObjects", e.to_string()))?,
            );
        }
    }
    let count = ids.len();
    for batch in ids.chunks(1000) {
        let out = s3
            .delete_objects()
            .bucket(bucket)
            .delete(
                Delete::builder()
                    .set_objects(Some(batch.to_vec()))
                    .quiet(true)
                    .build()
                    .map_err(|e| CloudError::other("DeleteObjects", e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("DeleteObjects", &e))?;
        if let Some(e) = out.errors().first() {
            return Err(CloudError {
                operation: "DeleteObjects",
                code: e.code().map(str::to_string),
                message: e.message().unwrap_or_default().to_string(),
            });
        }
    }
    Ok(count)
}

/// After `sanctum restore`: the key's current version, when it was restored from `lost`
/// (the restore's metadata says so) and its SHA-256 is `sealed_sha256`. Anything else is
/// `None`: the metadata alone proves nothing.
pub async fn restored_version(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    lost: &str,
    sealed_sha256: &str,
) -> Result<Option<String>> {
    let head = match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => head,
        Err(e) => {
            let error = CloudError::from_sdk("HeadObject", &e);
            return if error.is_not_found() {
                Ok(None)
            } else {
                Err(error)
            };
        }
    };
    let from = head.metadata().and_then(|m| m.get(RESTORED_FROM_VERSION));
    let (Some(from), Some(current)) = (from, head.version_id()) else {
        return Ok(None);
    };
    if from != lost {
        return Ok(None);
    }
    let (sha, _) = sha256(s3, bucket, key, Some(current)).await?;
    Ok((sha == sealed_sha256).then(|| current.to_string()))
}

/// Aborts unfinished multipart uploads of `key` (a media node died mid-recording).
pub async fn abort_uploads(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<usize> {
    let listed = s3
        .list_multipart_uploads()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("ListMultipartUploads", &e))?;
    let mut aborted = 0;
    for upload in listed.uploads().iter().filter(|u| u.key() == Some(key)) {
        s3.abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_upload_id(upload.upload_id().map(str::to_string))
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("AbortMultipartUpload", &e))?;
        aborted += 1;
    }
    Ok(aborted)
}
