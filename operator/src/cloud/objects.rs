//! Objects: checksums, disposal, leftover uploads, listing and conditional writes.

use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use sha2::{Digest, Sha256};

use super::{Cloud, CloudError};

/// Hex SHA-256 and size of an object version, read in full (streamed, never stored).
pub async fn sha256(
    cloud: &Cloud,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<(String, i64), CloudError> {
    let out = cloud
        .s3
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
    cloud: &Cloud,
    bucket: &str,
    key: &str,
) -> Result<usize, CloudError> {
    let pages = sanctum_audit::store::version_pages(&cloud.s3, bucket, key).await?;
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
        let out = cloud
            .s3
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

/// Object metadata naming the version a restored object was copied back from.
pub const RESTORED_FROM_VERSION: &str = "sanctum-restored-from-version";

/// After `sanctum restore`: the key's current version, when it was restored from `lost`
/// (the restore's metadata says so) and its SHA-256 is `sealed_sha256`. Anything else is
/// `None`: the metadata alone proves nothing.
pub async fn restored_version(
    cloud: &Cloud,
    bucket: &str,
    key: &str,
    lost: &str,
    sealed_sha256: &str,
) -> Result<Option<String>, CloudError> {
    let head = match cloud.s3.head_object().bucket(bucket).key(key).send().await {
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
    let (sha, _) = sha256(cloud, bucket, key, Some(current)).await?;
    Ok((sha == sealed_sha256).then(|| current.to_string()))
}

/// Aborts unfinished multipart uploads of `key` (a media node died mid-recording).
pub async fn abort_uploads(cloud: &Cloud, bucket: &str, key: &str) -> Result<usize, CloudError> {
    let listed = cloud
        .s3
        .list_multipart_uploads()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("ListMultipartUploads", &e))?;
    let mut aborted = 0;
    for upload in listed.uploads().iter().filter(|u| u.key() == Some(key)) {
        cloud
            .s3
            .abort_multipart_upload()
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

/// Every key under `prefix` in `bucket`, sorted.
pub async fn list_keys(
    cloud: &Cloud,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, CloudError> {
    sanctum_audit::store::list_keys(&cloud.s3, bucket, prefix).await
}

/// The current version of a small object (a manifest, an audit batch), read whole.
pub async fn get_bytes(cloud: &Cloud, bucket: &str, key: &str) -> Result<Vec<u8>, CloudError> {
    sanctum_audit::store::get_bytes(&cloud.s3, bucket, key).await
}

pub use sanctum_audit::store::unless_precondition_failed;
