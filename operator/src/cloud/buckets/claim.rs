//! Which bucket a tenant may use: never the audit or a backup bucket or another tenant's;
//! a bucket is created, or adopted only when new, tagged with this tenant's uid, or empty
//! and untagged, and then tagged. A bucket of another account is refused by S3 itself
//! (`ExpectedBucketOwner`).

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration, Tag, Tagging};

use super::{BucketReport, DesiredBucket, NOT_OWNED, TENANT_UID_TAG, default_name, missing_ok};
use crate::cloud::keys::TENANT_TAG;
use crate::cloud::{Cloud, CloudError};

/// Makes sure the bucket is this tenant's before anything is written to it: a reserved
/// name is refused; a missing bucket is created; an existing one is used only when it is
/// tagged with this tenant's uid, or is untagged and either carries the tenant's own
/// default name (an earlier attempt crashed before tagging it) or is empty (a bucket the
/// platform team made for the tenant). Anything else is someone else's: refused with
/// [`NOT_OWNED`], nothing changed. The tenant tags are written right after creation.
pub(super) async fn claim(
    cloud: &Cloud,
    want: &DesiredBucket,
    report: &mut BucketReport,
) -> Result<(), CloudError> {
    let s3 = &cloud.s3;
    let bucket = want.name.as_str();
    let refuse = |why: String| CloudError {
        operation: "ClaimBucket",
        code: Some(NOT_OWNED.to_string()),
        message: format!(
            "bucket {bucket} {why}; nothing was changed in it (choose another spec.storage.bucket, or leave it empty)"
        ),
    };
    if let Some((_, what)) = want.reserved.iter().find(|(name, _)| name == bucket) {
        return Err(refuse(format!("is {what}")));
    }
    let exists = match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => true,
        Err(e) => {
            let error = CloudError::from_sdk("HeadBucket", &e);
            let not_found =
                e.as_service_error().is_some_and(|s| s.is_not_found()) || error.is_not_found();
            let forbidden = e.raw_response().map(|r| r.status().as_u16()) == Some(403);
            if let (true, Some(owners)) = (forbidden, &cloud.owners) {
                // S3 answers 403 to a HEAD whose expected owner is not the bucket's.
                return Err(refuse(format!(
                    "is not owned by account {} or is closed to it",
                    owners.of(bucket)
                )));
            }
            if !not_found {
                return Err(error);
            }
            false
        }
    };
    let mut created = false;
    if !exists {
        let mut create = s3
            .create_bucket()
            .bucket(bucket)
            .object_lock_enabled_for_bucket(want.object_lock.is_some());
        if want.region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(want.region.as_str()))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => created = true,
            Err(e) => {
                let error = CloudError::from_sdk("CreateBucket", &e);
                if error.code.as_deref() != Some("BucketAlreadyOwnedByYou") {
                    return Err(error);
                }
            }
        }
    }
    let tags = match s3.get_bucket_tagging().bucket(bucket).send().await {
        Ok(out) => out.tag_set().to_vec(),
        Err(e) => missing_ok("GetBucketTagging", &e)?.unwrap_or_default(),
    };
    let owner = tags
        .iter()
        .find(|t| t.key() == TENANT_UID_TAG)
        .map(|t| t.value().to_string());
    match owner {
        Some(uid) if uid == want.tenant_uid => {}
        Some(_) => {
            return Err(refuse(
                "belongs to another tenant (its sanctum:tenant-uid tag names another uid)".into(),
            ));
        }
        None if created
            || want.configured
            || bucket == default_name(&want.tenant, &want.tenant_uid) => {}
        None => {
            let listed = s3
                .list_object_versions()
                .bucket(bucket)
                .max_keys(1)
                .send()
                .await
                .map_err(|e| CloudError::from_sdk("ListObjectVersions", &e))?;
            if !listed.versions().is_empty() || !listed.delete_markers().is_empty() {
                return Err(refuse(
                    "exists, holds objects and is not tagged as this tenant's".into(),
                ));
            }
        }
    }
    let tagged = |key: &str, value: &str| tags.iter().any(|t| t.key() == key && t.value() == value);
    if !tagged(TENANT_TAG, &want.tenant) || !tagged(TENANT_UID_TAG, &want.tenant_uid) {
        // Keep tags others set; replace only Sanctum's two.
        let mut set: Vec<Tag> = tags
            .iter()
            .filter(|t| t.key() != TENANT_TAG && t.key() != TENANT_UID_TAG)
            .cloned()
            .collect();
        for (key, value) in [
            (TENANT_TAG, want.tenant.as_str()),
            (TENANT_UID_TAG, want.tenant_uid.as_str()),
        ] {
            set.push(
                Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .map_err(|e| CloudError::other("PutBucketTagging", e.to_string()))?,
            );
        }
        s3.put_bucket_tagging()
            .bucket(bucket)
            .tagging(
                Tagging::builder()
                    .set_tag_set(Some(set))
                    .build()
                    .map_err(|e| CloudError::other("PutBucketTagging", e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("PutBucketTagging", &e))?;
        if !created {
            report.repaired.push("tags");
        }
    }
    report.created = created;
    Ok(())
}
