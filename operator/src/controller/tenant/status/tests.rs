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
        drills_scheduled: false,
        last_drill: None,
        drill_baseline: None,
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
fn drills_report_their_last_run_in_a_condition_that_does_not_gate_ready() {
    let mut t = fixtures::tenant("clinic-a");
    let mut v = fixtures::validated("clinic-a");
    v.spec.backup = Some(
        serde_json::from_value(serde_json::json!({
            "schedule": "@daily", "destination": {"bucket": "backups-a"},
            "restoreDrill": {"schedule": "@weekly", "scratchBucketPrefix": "drill-a"}
        }))
        .expect("backup spec"),
    );
    let mut o = observed(&[]);
    let without = converged(&t, &v, &o, &now());
    assert!(
        !types(&without).contains(&c::RESTORE_DRILL_SUCCEEDED),
        "no CronJob applied, no condition"
    );
    o.drills_scheduled = true;
    let s = converged(&t, &v, &o, &now());
    assert_eq!(
        reason(&s, c::RESTORE_DRILL_SUCCEEDED),
        reasons::NO_DRILL_YET
    );
    assert_eq!(s.last_restore_drill_outcome, None);

    o.last_drill = Some(BackupRun {
        job: "restore-drill-29000000".into(),
        finished: now(),
        succeeded: false,
        objects: None,
        error: Some("backup x: 1 object(s) do not match their SHA-256: r/1".into()),
    });
    let s = converged(&t, &v, &o, &now());
    assert_eq!(
        reason(&s, c::RESTORE_DRILL_SUCCEEDED),
        reasons::DRILL_FAILED
    );
    let condition = s
        .conditions
        .iter()
        .find(|c| c.type_ == c::RESTORE_DRILL_SUCCEEDED)
        .expect("present");
    assert_eq!(condition.status, "False");
    assert!(
        condition.message.contains("SHA-256"),
        "{}",
        condition.message
    );
    assert!(is_true(&s.conditions, c::READY), "alerted on, not down");
    assert_eq!(s.last_restore_drill_outcome.as_deref(), Some("Failed"));
    assert_eq!(s.last_restore_drill_time, Some(now()));

    // The next reconcile sees the same run, no longer new: its pod is not read again, and
    // the Job's generic reason does not overwrite what the pod reported.
    t.status = Some(s);
    if let Some(run) = o.last_drill.as_mut() {
        run.error =
            Some("BackoffLimitExceeded: Job has reached the specified backoff limit".into());
    }
    let again = converged(&t, &v, &o, &now());
    let kept = again
        .conditions
        .iter()
        .find(|c| c.type_ == c::RESTORE_DRILL_SUCCEEDED)
        .expect("present");
    assert!(kept.message.contains("SHA-256"), "{}", kept.message);

    o.last_drill = Some(BackupRun {
        job: "restore-drill-29010080".into(),
        finished: now(),
        succeeded: true,
        objects: Some(3),
        error: None,
    });
    let s = converged(&t, &v, &o, &now());
    assert!(is_true(&s.conditions, c::RESTORE_DRILL_SUCCEEDED));
    assert_eq!(s.last_restore_drill_objects, Some(3));
    t.status = Some(s);
    let error = Error::NamespaceTerminating {
        namespace: "vt-clinic-a".into(),
    };
    let after_error = failed(&t, &error, &now());
    assert!(
        is_true(&after_error.conditions, c::RESTORE_DRILL_SUCCEEDED),
        "a failed reconcile keeps what the last drill found"
    );
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
    assert!(run.is_new(t.status.as_ref().and_then(|s| s.last_backup_time.as_ref())));
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
    assert!(
        !run.is_new(t.status.as_ref().and_then(|s| s.last_backup_time.as_ref())),
        "reported once"
    );

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
            .is_new(t.status.as_ref().and_then(|s| s.last_backup_time.as_ref()))
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
