//! The backup section of the report: the last backup and the last restore drill, as the
//! tenant's status reports them, and whether the backup bucket keeps what it holds
//! (Object Lock with a default retention, read from S3).

use aws_sdk_s3::types::ObjectLockEnabled;
use sanctum_api::{BackupSpec, VideoTenantStatus, conditions};
use serde_json::{Value, json};

use super::Collector;
use crate::cloud::Cloud;
use crate::cloud::buckets::posture;

/// The backup bucket's Object Lock, read live: whether it passes, and what was read.
async fn bucket_lock(cloud: &Cloud, backup: &BackupSpec) -> (bool, Value, String) {
    let bucket = &backup.destination.bucket;
    let cloud = match &backup.destination.region {
        Some(region) if *region != cloud.region => &cloud.in_region(region),
        _ => cloud,
    };
    let lock = match posture::read_object_lock(&cloud.s3, bucket).await {
        Ok(lock) => lock,
        Err(e) => return (false, json!(null), format!("{bucket}: {e}")),
    };
    let enabled =
        lock.as_ref().and_then(|c| c.object_lock_enabled()) == Some(&ObjectLockEnabled::Enabled);
    match posture::default_retention(lock.as_ref()) {
        Ok(retention) => {
            let mode = retention.mode().map(|m| m.as_str());
            let period = match (retention.days(), retention.years()) {
                (Some(d), _) => format!("{d} days"),
                (_, Some(y)) => format!("{y} years"),
                _ => "?".into(),
            };
            let observed = json!({
                "enabled": enabled, "mode": mode,
                "days": retention.days(), "years": retention.years(),
            });
            let detail = format!(
                "{bucket}: Object Lock, default retention {} {period}",
                mode.unwrap_or("?")
            );
            (true, observed, detail)
        }
        Err(reason) => (
            false,
            json!({"enabled": enabled}),
            format!("{bucket} {reason}"),
        ),
    }
}

/// Backups and drills of the tenant, each run's outcome a finding, and the backup
/// bucket's Object Lock.
pub(super) async fn section(
    cloud: &Cloud,
    backup: Option<&BackupSpec>,
    status: &VideoTenantStatus,
    found: &mut Collector,
) -> Value {
    match backup {
        None => json!({"configured": false}),
        Some(b) => {
            let outcome = status.last_backup_outcome.clone();
            let time = status.last_backup_time.as_ref().map(|t| t.0.to_string());
            let ok = outcome
                .as_deref()
                .is_some_and(|o| o.eq_ignore_ascii_case("succeeded"));
            found.add(
                "backup.last run",
                ok,
                format!(
                    "last backup {} at {} ({} objects)",
                    outcome.as_deref().unwrap_or("never ran"),
                    time.as_deref().unwrap_or("-"),
                    status.last_backup_objects.unwrap_or(0)
                ),
            );
            let (locked, lock, detail) = bucket_lock(cloud, b).await;
            found.add("backup.bucket lock", locked, detail);
            let drill = match &b.restore_drill {
                None => json!({
                    "configured": false,
                    "note": "no scheduled restore drill (spec.backup.restoreDrill): run `kubectl sanctum restore-drill`",
                }),
                Some(d) => {
                    let outcome = status.last_restore_drill_outcome.clone();
                    let time = status
                        .last_restore_drill_time
                        .as_ref()
                        .map(|t| t.0.to_string());
                    let condition = status
                        .conditions
                        .iter()
                        .find(|c| c.type_ == conditions::RESTORE_DRILL_SUCCEEDED);
                    found.add(
                        "backup.restore drill",
                        outcome.as_deref() == Some("Succeeded"),
                        match condition {
                            Some(c) => format!("{} {}: {}", c.type_, c.status, c.message),
                            None => "scheduled, but no drill has been reported yet".to_string(),
                        },
                    );
                    json!({
                        "configured": true,
                        "schedule": d.schedule,
                        "scratchBucketPrefix": d.scratch_bucket_prefix,
                        "lastRestoreDrillTime": time,
                        "lastRestoreDrillOutcome": outcome,
                        "lastRestoreDrillObjects": status.last_restore_drill_objects,
                        "condition": condition.map(|c| json!({
                            "status": c.status, "reason": c.reason, "message": c.message,
                        })),
                    })
                }
            };
            json!({
                "configured": true,
                "schedule": b.schedule,
                "destination": b.destination.bucket,
                "objectLock": lock,
                "keep": b.keep,
                "lastBackupTime": time,
                "lastBackupOutcome": outcome,
                "lastBackupObjects": status.last_backup_objects,
                "restoreDrill": drill,
            })
        }
    }
}
