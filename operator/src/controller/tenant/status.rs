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
        ..current
    }
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
mod tests {
    use super::*;
    use crate::controller::conditions::is_true;
    use crate::controller::tenant::fixtures;
    use crate::controller::tenant::observe::BackupRun;
    use crate::controller::tenant::validate::Invalid;
    use k8s_openapi::jiff::Timestamp;
    use sanctum_api::RegionStatus;

    fn now() -> Time {
        Time(Timestamp::from_second(1_800_000_000).expect("valid"))
    }

    fn observed(rolling_out: &[&str]) -> Observed {
        Observed {
            regions: vec![
                RegionStatus {
                    name: "us-east".into(),
                    desired: 2,
                    ready: if rolling_out.is_empty() { 2 } else { 1 },
                    media: None,
                },
                RegionStatus {
                    name: "eu-west".into(),
                    desired: 1,
                    ready: 1,
                    media: Some("203.0.113.10 udp/10000 tcp/10000".into()),
                },
            ],
            rolling_out: rolling_out.iter().map(|s| s.to_string()).collect(),
            unexposed: Vec::new(),
            network_policies: 5,
            key: Some(fixtures::key()),
            bucket: Some("sanctum-clinic-a-1234abcd".into()),
            last_backup: None,
        }
    }

    fn types(s: &VideoTenantStatus) -> Vec<&str> {
        s.conditions.iter().map(|c| c.type_.as_str()).collect()
    }

    #[test]
    fn first_status_is_not_ready_and_reconciling_with_generation() {
        let t = fixtures::tenant("clinic-a");
        let s = initial(&t, &now());
        assert_eq!(s.observed_generation, Some(1));
        assert!(is_true(&s.conditions, c::RECONCILING));
        assert!(!is_true(&s.conditions, c::READY));
        assert_eq!(
            types(&s),
            [
                "Ready",
                "Reconciling",
                "Stalled",
                "KeyReady",
                "BucketReady",
                "NetworkIsolated",
                "MediaReady",
                "BackupScheduled"
            ]
        );
    }

    #[test]
    fn ready_when_every_part_is_ready() {
        let t = fixtures::tenant("clinic-a");
        let v = fixtures::validated("clinic-a");
        let s = converged(&t, &v, &observed(&[]), &now());
        for part in c::PART_TYPES {
            assert!(is_true(&s.conditions, part), "{part}");
        }
        assert!(is_true(&s.conditions, c::READY));
        assert!(!is_true(&s.conditions, c::STALLED));
        assert!(!is_true(&s.conditions, c::RECONCILING));
        assert_eq!(s.media_nodes.as_deref(), Some("3/3"));
        assert_eq!(s.key_arn.as_deref(), Some("local"));
        assert_eq!(s.key_version, Some(1));
        assert_eq!(s.bucket.as_deref(), Some("sanctum-clinic-a-1234abcd"));
        let mut sorted = types(&s);
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), s.conditions.len(), "one condition per type");
    }

    #[test]
    fn ready_is_never_claimed_for_what_does_not_exist() {
        let t = fixtures::tenant("clinic-a");
        let v = fixtures::validated("clinic-a");
        let mut o = observed(&[]);
        o.key = None;
        let s = converged(&t, &v, &o, &now());
        assert!(!is_true(&s.conditions, c::KEY_READY));
        assert!(!is_true(&s.conditions, c::READY));
    }

    fn reason<'a>(s: &'a VideoTenantStatus, type_: &str) -> &'a str {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.reason.as_str())
            .expect("condition present")
    }

    #[test]
    fn backups_report_the_schedule_and_the_last_run_without_blocking_ready() {
        let mut t = fixtures::tenant("clinic-a");
        let mut v = fixtures::validated("clinic-a");
        v.spec.backup = Some(
            serde_json::from_value(serde_json::json!({
                "schedule": "@daily", "destination": {"bucket": "backups-a"}
            }))
            .expect("backup spec"),
        );
        let s = converged(&t, &v, &observed(&[]), &now());
        assert!(is_true(&s.conditions, c::BACKUP_SCHEDULED));
        assert_eq!(reason(&s, c::BACKUP_SCHEDULED), reasons::SCHEDULED);
        assert!(is_true(&s.conditions, c::READY));
        assert_eq!(s.last_backup_outcome, None, "no run yet, none claimed");

        let run = BackupRun {
            job: "backup-29000000".into(),
            finished: now(),
            succeeded: false,
            objects: None,
            error: Some("destination bucket not found".into()),
        };
        assert!(run.is_new(t.status.as_ref()));
        let mut o = observed(&[]);
        o.last_backup = Some(run.clone());
        let s = converged(&t, &v, &o, &now());
        assert_eq!(reason(&s, c::BACKUP_SCHEDULED), reasons::LAST_BACKUP_FAILED);
        assert!(
            is_true(&s.conditions, c::READY),
            "a failed run is alerted on (Event, metric), not a reason to call the tenant down"
        );
        assert_eq!(s.last_backup_outcome.as_deref(), Some("Failed"));
        assert_eq!(s.last_backup_time, Some(now()));
        t.status = Some(s);
        assert!(!run.is_new(t.status.as_ref()), "reported once");

        let later = Time(Timestamp::from_second(1_800_086_400).expect("valid"));
        o.last_backup = Some(BackupRun {
            job: "backup-29001440".into(),
            finished: later.clone(),
            succeeded: true,
            objects: Some(42),
            error: None,
        });
        assert!(
            o.last_backup
                .as_ref()
                .expect("set")
                .is_new(t.status.as_ref())
        );
        let s = converged(&t, &v, &o, &later);
        assert_eq!(reason(&s, c::BACKUP_SCHEDULED), reasons::SCHEDULED);
        assert_eq!(s.last_backup_outcome.as_deref(), Some("Succeeded"));
        assert_eq!(s.last_backup_objects, Some(42));
        assert_eq!(s.last_backup_time, Some(later));

        t.status = Some(s.clone());
        o.last_backup = None;
        let kept = converged(&t, &v, &o, &now());
        assert_eq!(
            kept.last_backup_objects,
            Some(42),
            "kept when no Job is left"
        );
    }

    #[test]
    fn rolling_out_media_is_reconciling() {
        let t = fixtures::tenant("clinic-a");
        let v = fixtures::validated("clinic-a");
        let s = converged(&t, &v, &observed(&["us-east"]), &now());
        assert!(is_true(&s.conditions, c::RECONCILING));
        assert!(!is_true(&s.conditions, c::MEDIA_READY));
        assert_eq!(s.media_nodes.as_deref(), Some("2/3"));
    }

    #[test]
    fn a_region_waiting_for_its_media_address_is_not_ready_and_says_why() {
        let t = fixtures::tenant("clinic-a");
        let v = fixtures::validated("clinic-a");
        let mut o = observed(&[]);
        o.unexposed = vec!["eu-west".into()];
        let s = converged(&t, &v, &o, &now());
        assert!(is_true(&s.conditions, c::RECONCILING));
        let media = s
            .conditions
            .iter()
            .find(|c| c.type_ == c::MEDIA_READY)
            .expect("MediaReady");
        assert_eq!(media.status, "False");
        assert!(media.message.contains("eu-west"), "{}", media.message);
        assert_eq!(
            s.regions[1].media.as_deref(),
            Some("203.0.113.10 udp/10000 tcp/10000"),
            "where clients send media is in the status"
        );
    }

    #[test]
    fn an_unchanged_outcome_yields_an_identical_status() {
        let mut t = fixtures::tenant("clinic-a");
        let v = fixtures::validated("clinic-a");
        let first = converged(&t, &v, &observed(&[]), &now());
        t.status = Some(first.clone());
        let later = Time(Timestamp::from_second(1_900_000_000).expect("valid"));
        assert_eq!(
            converged(&t, &v, &observed(&[]), &later),
            first,
            "no status write when nothing changed"
        );
    }

    #[test]
    fn permanent_errors_stall_and_transient_errors_retry() {
        let t = fixtures::tenant("clinic-a");
        let invalid = Error::InvalidSpec {
            tenant: "clinic-a".into(),
            source: Invalid::MissingUid,
        };
        let s = failed(&t, &invalid, &now());
        assert!(is_true(&s.conditions, c::STALLED));
        assert!(!is_true(&s.conditions, c::RECONCILING));
        let msg = &s
            .conditions
            .iter()
            .find(|c| c.type_ == c::STALLED)
            .expect("stalled")
            .message;
        assert!(msg.contains("metadata.uid"), "{msg}");

        let transient = Error::NamespaceTerminating {
            namespace: "vt-clinic-a".into(),
        };
        let s = failed(&t, &transient, &now());
        assert!(!is_true(&s.conditions, c::STALLED));
        assert!(is_true(&s.conditions, c::RECONCILING));
    }
}
