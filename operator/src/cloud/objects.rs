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
/// deleting only the latest would leave the recording recoverable). Returns how many.
pub async fn delete_all_versions(
    cloud: &Cloud,
    bucket: &str,
    key: &str,
) -> Result<usize, CloudError> {
    let listed = cloud
        .s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("ListObjectVersions", &e))?;
    let mut ids = Vec::new();
    let versions = listed
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .map(|v| v.version_id().map(str::to_string));
    let markers = listed
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
    if ids.is_empty() {
        return Ok(0);
    }
    let count = ids.len();
    let out = cloud
        .s3
        .delete_objects()
        .bucket(bucket)
        .delete(
            Delete::builder()
                .set_objects(Some(ids))
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
    Ok(count)
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
