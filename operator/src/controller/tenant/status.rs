//! Tenant status: conditions as kstatus and Argo CD read them, and per-region counts.
//!
//! Pure functions from what a reconcile observed to the status it should publish;
//! `mod.rs` writes the result only when it differs from what is stored.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sanctum_api::conditions::{self as c, reasons};
use sanctum_api::{VideoTenant, VideoTenantStatus};

use super::Error;
use super::observe::Observed;
use super::validate::Validated;
use crate::controller::conditions::{Desired, merge};

/// Status written on the very first reconcile, before anything exists: an empty status
/// would read as Current to kstatus and let a GitOps sync pass too early.
pub fn initial(tenant: &VideoTenant, now: &Time) -> VideoTenantStatus {
    let mut desired = vec![
        Desired::no(c::READY, reasons::PROGRESSING, "reconcile started"),
        Desired::yes(
            c::RECONCILING,
            reasons::PROGRESSING,
            "creating the tenant's resources",
        ),
        Desired::no(c::STALLED, reasons::PROGRESSING, "reconcile started"),
    ];
    desired.extend(
        c::PART_TYPES
            .iter()
            .map(|t| Desired::unknown(t, reasons::PROGRESSING, "not reconciled yet")),
    );
    VideoTenantStatus {
        observed_generation: tenant.metadata.generation,
        conditions: merge(&[], &desired, tenant.metadata.generation, now),
        namespace: Some(tenant.namespace_name()),
        ..Default::default()
    }
}

/// Status after a reconcile that applied everything.
pub fn converged(
    tenant: &VideoTenant,
    v: &Validated,
    observed: &Observed,
    now: &Time,
) -> VideoTenantStatus {
    let mut parts = vec![
        match &observed.key {
            Some(key) => Desired::yes(
                c::KEY_READY,
                reasons::RECONCILED,
                format!("data key v{} wrapped by {}", key.version, key.arn),
            ),
            None => Desired::no(
                c::KEY_READY,
                reasons::PROGRESSING,
                "the tenant key is not made yet",
            ),
        },
        match &observed.bucket {
            Some(bucket) => Desired::yes(
                c::BUCKET_READY,
                reasons::RECONCILED,
                format!("bucket {bucket} is private, encrypted, versioned, with retention"),
            ),
            None => Desired::no(
                c::BUCKET_READY,
                reasons::PROGRESSING,
                "the bucket is not provisioned yet",
            ),
        },
        Desired::yes(
            c::NETWORK_ISOLATED,
            reasons::APPLIED,
            format!(
                "default deny and {} allowances in force",
                observed.network_policies.saturating_sub(1)
            ),
        ),
    ];
    let (ready, desired): (i32, i32) = observed
        .regions
        .iter()
        .fold((0, 0), |(r, d), s| (r + s.ready, d + s.desired));
    parts.push(if !observed.unexposed.is_empty() {
        Desired::no(
            c::MEDIA_READY,
            reasons::WAITING_FOR_MEDIA,
            format!(
                "waiting for the cluster to assign the media Service of {} (node ports or a load balancer address); no media node runs there until then",
                observed.unexposed.join(", ")
            ),
        )
    } else if observed.rolling_out.is_empty() {
        Desired::yes(
            c::MEDIA_READY,
            reasons::RECONCILED,
            format!(
                "{ready}/{desired} media nodes ready in {} regions",
                observed.regions.len()
            ),
        )
    } else {
        Desired::no(
            c::MEDIA_READY,
            reasons::WAITING_FOR_MEDIA,
            format!(
                "{ready}/{desired} media nodes ready; waiting for {}",
                observed.rolling_out.join(", ")
            ),
        )
    });
    parts.push(match (&v.spec.backup, &observed.last_backup) {
        (None, _) => Desired::yes(
            c::BACKUP_SCHEDULED,
            reasons::NOT_CONFIGURED,
            "spec.backup is not set: no backups are taken",
        ),
        (Some(spec), None) => Desired::yes(
            c::BACKUP_SCHEDULED,
            reasons::SCHEDULED,
            format!(
                "backups to {} run on schedule `{}`; no run of the CronJob has finished yet",
                spec.destination.bucket, spec.schedule
            ),
        ),
        (Some(spec), Some(run)) => Desired::yes(
            c::BACKUP_SCHEDULED,
            if run.succeeded {
                reasons::SCHEDULED
            } else {
                reasons::LAST_BACKUP_FAILED
            },
            format!(
                "backups to {} run on schedule `{}`; the last one ({}) {} at {}",
                spec.destination.bucket,
                spec.schedule,
                run.job,
                if run.succeeded { "succeeded" } else { "failed" },
                run.finished.0
            ),
        ),
    });

    let not_ready: Vec<&Desired> = parts.iter().filter(|p| !p.is_true()).collect();
    let progressing = !observed.rolling_out.is_empty() || !observed.unexposed.is_empty();
    let mut desired_conditions = vec![
        if not_ready.is_empty() {
            Desired::yes(c::READY, reasons::RECONCILED, "the tenant is converged")
        } else {
            let list: Vec<String> = not_ready
                .iter()
                .map(|p| format!("{} ({})", p.type_, p.reason))
                .collect();
            Desired::no(
                c::READY,
                reasons::PARTS_NOT_READY,
                format!("not ready: {}", list.join(", ")),
            )
        },
        if progressing {
            Desired::yes(
                c::RECONCILING,
                reasons::WAITING_FOR_MEDIA,
                "waiting for media nodes to become ready",
            )
        } else {
            Desired::no(c::RECONCILING, reasons::RECONCILED, "all changes applied")
        },
        Desired::no(c::STALLED, reasons::RECONCILED, "no blocking problem"),
    ];
    desired_conditions.extend(parts);
    desired_conditions.extend(drill_condition(tenant, v, observed));
    let current = tenant.status.clone().unwrap_or_default();
    VideoTenantStatus {
        observed_generation: tenant.metadata.generation,
        conditions: merge(
            &current.conditions,
            &desired_conditions,
            tenant.metadata.generation,
            now,
        ),
        namespace: Some(v.namespace.clone()),
        media_nodes: Some(format!("{ready}/{desired}")),
        regions: observed.regions.clone(),
        key_arn: observed.key.as_ref().map(|k| k.arn.clone()),
        key_version: observed.key.as_ref().map(|k| k.version),
        bucket: observed.bucket.clone(),
        last_backup_time: match &observed.last_backup {
            Some(run) => Some(run.finished.clone()),
            None => current.last_backup_time.clone(),
        },
        last_backup_outcome: match &observed.last_backup {
            Some(run) => Some(run.outcome().to_string()),
            None => current.last_backup_outcome.clone(),
        },
        last_backup_objects: match &observed.last_backup {
            Some(run) => run.objects,
            None => current.last_backup_objects,
        },
        last_restore_drill_time: match &observed.last_drill {
            Some(run) => Some(run.finished.clone()),
            None => current.last_restore_drill_time.clone(),
        },
        last_restore_drill_outcome: match &observed.last_drill {
            Some(run) => Some(run.outcome().to_string()),
            None => current.last_restore_drill_outcome.clone(),
        },
        last_restore_drill_objects: match &observed.last_drill {
            Some(run) => run.objects,
            None => current.last_restore_drill_objects,
        },
        ..current
    }
}

/// `RestoreDrillSucceeded`, when drills are scheduled: what the last one found. It is
/// alerted on, and does not gate `Ready` (a failed drill does not take calls down).
fn drill_condition(tenant: &VideoTenant, v: &Validated, observed: &Observed) -> Option<Desired> {
    let spec = v.spec.backup.as_ref()?.restore_drill.as_ref()?;
    if !observed.drills_scheduled {
        return None;
    }
    Some(match &observed.last_drill {
        None => Desired::unknown(
            c::RESTORE_DRILL_SUCCEEDED,
            reasons::NO_DRILL_YET,
            format!(
                "restore drills run on schedule `{}`; none has finished yet",
                spec.schedule
            ),
        ),
        Some(run) if run.succeeded => Desired::yes(
            c::RESTORE_DRILL_SUCCEEDED,
            reasons::DRILL_SUCCEEDED,
            match run.objects {
                Some(0) => format!(
                    "drill {} at {} restored 0 objects: the backup holds no recording to open",
                    run.job, run.finished.0
                ),
                Some(n) => format!(
                    "drill {} at {} restored {n} objects, each matching its SHA-256, and opened a sealed recording",
                    run.job, run.finished.0
                ),
                None => format!("drill {} at {} succeeded", run.job, run.finished.0),
            },
        ),
        Some(run) => {
            // The pod's own result is read once, when the run is new; later reconciles
            // keep the message that recorded it rather than the Job's generic reason.
            let prefix = format!("drill {} at {} failed: ", run.job, run.finished.0);
            let recorded = tenant
                .status
                .as_ref()
                .and_then(|s| {
                    s.conditions
                        .iter()
                        .find(|c| c.type_ == c::RESTORE_DRILL_SUCCEEDED && c.status == "False")
                })
                .filter(|c| c.message.starts_with(&prefix))
                .map(|c| c.message.clone());
            let message = match (
                recorded,
                run.is_new(
                    tenant
                        .status
                        .as_ref()
                        .and_then(|s| s.last_restore_drill_time.as_ref()),
                ),
            ) {
                (Some(message), false) => message,
                _ => format!(
                    "{prefix}{}",
                    run.error.as_deref().unwrap_or("no reason given")
                ),
            };
            Desired::no(c::RESTORE_DRILL_SUCCEEDED, reasons::DRILL_FAILED, message)
        }
    })
}

/// Status after a failed reconcile: the error is named; parts keep what was last known.
pub fn failed(tenant: &VideoTenant, error: &Error, now: &Time) -> VideoTenantStatus {
    let current = tenant.status.clone().unwrap_or_default();
    let known = |t: &str| {
        current
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(Desired::from_condition)
    };
    let message = error.to_string();
    let mut desired = if error.is_permanent() {
        vec![
            Desired::no(c::READY, error.reason(), message.clone()),
            Desired::no(
                c::RECONCILING,
                error.reason(),
                "waiting for the spec or the cluster to change",
            ),
            Desired::yes(c::STALLED, error.reason(), message),
        ]
    } else {
        vec![
            known(c::READY)
                .unwrap_or_else(|| Desired::no(c::READY, reasons::RETRYING, message.clone())),
            Desired::yes(c::RECONCILING, reasons::RETRYING, message.clone()),
            Desired::no(c::STALLED, reasons::RETRYING, "retrying a transient error"),
        ]
    };
    desired.extend(c::PART_TYPES.iter().map(|t| {
        known(t).unwrap_or_else(|| Desired::unknown(t, reasons::PROGRESSING, "not reconciled yet"))
    }));
    desired.extend(known(c::RESTORE_DRILL_SUCCEEDED));
    VideoTenantStatus {
        observed_generation: tenant.metadata.generation,
        conditions: merge(
            &current.conditions,
            &desired,
            tenant.metadata.generation,
            now,
        ),
        namespace: current
            .namespace
            .clone()
            .or_else(|| Some(tenant.namespace_name())),
        ..current
    }
}

#[cfg(test)]
mod tests;
