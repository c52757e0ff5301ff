//! Backups are kept by the backup bucket, not by whoever can write to it: a backup runs
//! only into a bucket with Object Lock and a default retention, so every object it writes
//! is locked for that retention, and pruning beyond `keep` only hides old backups behind
//! delete markers. Nothing holding the backup role (a tenant admin running pods as the
//! backup ServiceAccount, or a stolen credential) can destroy a backup before its
//! retention ends; with `COMPLIANCE` mode, not even the account's root user can.

use super::BackupError;
use crate::cloud::buckets::posture;
use crate::cloud::{Cloud, CloudError};

/// Why a backup bucket cannot keep backups, if it cannot.
pub(super) async fn require_object_lock(dest: &Cloud, bucket: &str) -> Result<(), BackupError> {
    let lock = posture::read_object_lock(&dest.s3, bucket).await?;
    match posture::default_retention(lock.as_ref()) {
        Ok(_) => Ok(()),
        Err(reason) => Err(BackupError::Unlocked {
            bucket: bucket.to_string(),
            reason,
        }),
    }
}

/// Retires `key` from the current view of the backup bucket: a delete marker, which the
/// backup role may add; the locked versions stay until their retention ends (expire them
/// with a lifecycle rule on noncurrent versions).
pub(super) async fn retire(dest: &Cloud, bucket: &str, key: &str) -> Result<(), BackupError> {
    dest.s3
        .delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("DeleteObject", &e))?;
    Ok(())
}
