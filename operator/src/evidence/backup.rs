//! The backup section of the report: the last backup and the last restore drill, as the
//! tenant's status reports them.

use sanctum_api::{BackupSpec, VideoTenantStatus, conditions};
use serde_json::{Value, json};

use super::Collector;

/// Backups and drills of the tenant, each run's outcome a finding.
pub(super) fn section(
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
                "keep": b.keep,
                "lastBackupTime": time,
                "lastBackupOutcome": outcome,
                "lastBackupObjects": status.last_backup_objects,
                "restoreDrill": drill,
            })
        }
    }
}
