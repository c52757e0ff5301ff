//! Every transition of the Recording state machine, as a table: inputs and facts in, the
//! step out. No cluster, node or bucket: `decide` is pure.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use sanctum_api::conditions::recording::reasons as r;
use sanctum_api::control::{NodePhase, RecordingReport};
use sanctum_api::{
    Consent, ConsentMethod, RecordingPhase, RecordingPolicy, RecordingSpec, RecordingStatus,
};

use super::*;

pub(super) const BUCKET: &str = "sanctum-clinic-a-1234abcd";
pub(super) const KEY: &str = "recordings/uid-1.sealed";

pub(super) fn at(t: &str) -> Timestamp {
    t.parse().expect("timestamp")
}

pub(super) fn now() -> Timestamp {
    at("2026-06-01T12:00:00Z")
}

pub(super) fn spec() -> RecordingSpec {
    RecordingSpec {
        room: "room-7f3a".into(),
        consent: Some(Consent {
            recorded_by: "host-1".into(),
            method: ConsentMethod::Verbal,
            given_at: Time(at("2026-06-01T11:59:00Z")),
        }),
        retention_days: None,
        legal_hold: false,
        stop: false,
    }
}

pub(super) fn policy() -> RecordingPolicy {
    RecordingPolicy {
        enabled: true,
        require_consent: true,
        host_confirms: false,
    }
}

/// A node as discovery finds it: its address and the pod its endpoint names.
pub(super) fn node() -> NodeEndpoint {
    NodeEndpoint {
        address: "10.244.1.5:9443".into(),
        pod: "media-us-east-0".into(),
    }
}

pub(super) fn report(phase: NodePhase) -> RecordingReport {
    RecordingReport {
        phase,
        room: "room-7f3a".into(),
        bucket: BUCKET.into(),
        key: KEY.into(),
        upload_id: None,
        key_version: 2,
        started_at: "2026-06-01T11:00:00Z".into(),
        ended_at: Some("2026-06-01T11:30:00Z".into()),
        frames: 10,
        skipped: 0,
        version_id: Some("v-1".into()),
        size_bytes: Some(1000),
        sha256: Some("ab".repeat(32)),
        reason: None,
    }
}

pub(super) fn status(phase: Option<RecordingPhase>) -> RecordingStatus {
    RecordingStatus {
        phase,
        bucket: Some(BUCKET.into()),
        key: Some(KEY.into()),
        media_node: Some(node().to_string()),
        ..Default::default()
    }
}

pub(super) struct Case {
    pub(super) spec: RecordingSpec,
    pub(super) policy: RecordingPolicy,
    pub(super) status: RecordingStatus,
    pub(super) bucket: Option<&'static str>,
    pub(super) deleting: bool,
    pub(super) terminating: bool,
    pub(super) now: Timestamp,
}

impl Case {
    pub(super) fn new(phase: Option<RecordingPhase>) -> Self {
        Case {
            spec: spec(),
            policy: policy(),
            status: status(phase),
            bucket: Some(BUCKET),
            deleting: false,
            terminating: false,
            now: now(),
        }
    }

    pub(super) fn decide(&self, facts: &Facts) -> Step {
        decide(
            &Inputs {
                spec: &self.spec,
                generation: Some(1),
                status: &self.status,
                policy: &self.policy,
                tenant_retention_days: 30,
                bucket: self.bucket,
                key: KEY,
                deleting: self.deleting,
                namespace_terminating: self.terminating,
                now: self.now,
                integrity_interval: Duration::from_secs(3600),
                resync: Duration::from_secs(300),
            },
            facts,
        )
    }
}

pub(super) fn outcome(step: Step) -> Outcome {
    match step {
        Step::Done(o) => o,
        Step::Act(a) => panic!("expected an outcome, got {a:?}"),
    }
}

pub(super) fn reason(o: &Outcome, type_: &str) -> String {
    o.status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| format!("{}/{}", c.status, c.reason))
        .unwrap_or_default()
}

pub(super) fn nodes() -> Facts {
    Facts {
        nodes: Some(vec![node()]),
        ..Default::default()
    }
}

#[test]
fn pending_refuses_what_policy_forbids_before_touching_a_node() {
    let mut disabled = Case::new(None);
    disabled.policy.enabled = false;
    let o = outcome(disabled.decide(&Facts::default()));
    assert_eq!(o.status.phase, Some(RecordingPhase::Failed));
    assert_eq!(
        reason(&o, "Stalled"),
        format!("True/{}", r::RECORDING_DISABLED)
    );
    assert!(o.notes[0].warning);

    let mut no_consent = Case::new(None);
    no_consent.spec.consent = None;
    assert_eq!(
        reason(&outcome(no_consent.decide(&Facts::default())), "Stalled"),
        format!("True/{}", r::CONSENT_REQUIRED)
    );
    // Consent not required: the same spec starts.
    no_consent.policy.require_consent = false;
    assert!(matches!(
        no_consent.decide(&Facts::default()),
        Step::Act(Action::Start(_))
    ));

    let mut stopped = Case::new(Some(RecordingPhase::Pending));
    stopped.spec.stop = true;
    assert_eq!(
        reason(&outcome(stopped.decide(&Facts::default())), "Stalled"),
        format!("True/{}", r::STOPPED_BEFORE_START)
    );
}

#[test]
fn pending_starts_in_the_tenants_bucket_at_the_uid_key_only() {
    let mut case = Case::new(None);
    // Status someone wrote names another bucket: it plays no part.
    case.status.bucket = Some("sanctum-clinic-b-99999999".into());
    case.status.key = Some("recordings/victim.sealed".into());
    match case.decide(&Facts::default()) {
        Step::Act(Action::Start(req)) => {
            assert_eq!((req.bucket.as_str(), req.key.as_str()), (BUCKET, KEY));
            assert_eq!(req.room, "room-7f3a");
        }
        other => panic!("{other:?}"),
    }
    case.bucket = None;
    let o = outcome(case.decide(&Facts::default()));
    assert_eq!(o.status.phase, Some(RecordingPhase::Pending));
    assert_eq!(
        reason(&o, "Reconciling"),
        format!("True/{}", r::TENANT_NOT_READY)
    );
    assert_eq!(o.requeue, Some(Duration::from_secs(5)));
}

#[test]
fn pending_follows_what_the_nodes_answered() {
    let case = Case::new(Some(RecordingPhase::Pending));
    let started = Facts {
        started: Some(Started::On {
            node: node(),
            report: report(NodePhase::Recording),
        }),
        ..Default::default()
    };
    let o = outcome(case.decide(&started));
    assert_eq!(o.status.phase, Some(RecordingPhase::Recording));
    assert_eq!(
        o.status.media_node.as_deref(),
        Some("https://10.244.1.5:9443")
    );
    assert_eq!(o.status.key_version, Some(2));
    assert_eq!(o.notes[0].reason, r::STARTED);

    let none = Facts {
        started: Some(Started::NoHost),
        ..Default::default()
    };
    let o = outcome(case.decide(&none));
    assert_eq!(o.status.phase, Some(RecordingPhase::Pending));
    assert_eq!(
        reason(&o, "Reconciling"),
        format!("True/{}", r::ROOM_NOT_ACTIVE)
    );

    let refused = Facts {
        started: Some(Started::Refused("node said\nno\u{7}".into())),
        ..Default::default()
    };
    let o = outcome(case.decide(&refused));
    let message = &o.status.conditions[0].message;
    assert!(
        !message.contains('\n') && !message.contains('\u{7}'),
        "node text is sanitised: {message:?}"
    );

    let mut lying = report(NodePhase::Recording);
    lying.bucket = "sanctum-clinic-b-99999999".into();
    let o = outcome(case.decide(&Facts {
        started: Some(Started::On {
            node: node(),
            report: lying,
        }),
        ..Default::default()
    }));
    assert_eq!(
        reason(&o, "Stalled"),
        format!("True/{}", r::NODE_REPORT_MISMATCH)
    );
}

#[test]
fn recording_talks_only_to_a_node_the_tenants_services_list() {
    let mut case = Case::new(Some(RecordingPhase::Recording));
    assert_eq!(case.decide(&Facts::default()), Step::Act(Action::Discover));
    assert_eq!(case.decide(&nodes()), Step::Act(Action::Poll(node())));
    // Status records the address only; the node acted on is the discovered one, which
    // names the pod the control token is bound to.
    let Step::Act(Action::Poll(polled)) = case.decide(&nodes()) else {
        panic!("not polled");
    };
    assert_eq!(polled.pod, "media-us-east-0");
    case.spec.stop = true;
    assert_eq!(case.decide(&nodes()), Step::Act(Action::Stop(node())));
    // Status forged to point at another address: not contacted; the upload at the
    // recording's own key in the tenant's bucket is aborted, and it fails.
    case.status.media_node = Some("http://10.0.0.5:80".into());
    case.status.bucket = Some("sanctum-clinic-b-99999999".into());
    assert_eq!(
        case.decide(&nodes()),
        Step::Act(Action::AbortUploads {
            bucket: BUCKET.into(),
            key: KEY.into()
        })
    );
    let mut aborted = nodes();
    aborted.aborted = true;
    let o = outcome(case.decide(&aborted));
    assert_eq!(
        reason(&o, "Stalled"),
        format!("True/{}", r::MEDIA_NODE_LOST)
    );
}

#[test]
fn recording_follows_the_nodes_report_to_sealed() {
    let case = Case::new(Some(RecordingPhase::Recording));
    let with = |report: Reported| Facts {
        reported: Some(report),
        ..nodes()
    };

    let o = outcome(case.decide(&with(Reported::Report(report(NodePhase::Recording)))));
    assert_eq!(
        (o.status.clone(), o.requeue),
        (case.status.clone(), Some(Duration::from_secs(10)))
    );

    let o = outcome(case.decide(&with(Reported::Report(report(NodePhase::Finalizing)))));
    assert_eq!(o.status.phase, Some(RecordingPhase::Finalizing));
    assert!(o.status.ended_at.is_some());

    let mut failed = report(NodePhase::Failed);
    failed.reason = Some("disk full".into());
    let o = outcome(case.decide(&with(Reported::Report(failed))));
    assert_eq!(
        reason(&o, "Stalled"),
        format!("True/{}", r::RECORDING_FAILED)
    );

    let lost = with(Reported::Lost("unreachable".into()));
    assert_eq!(
        case.decide(&lost),
        Step::Act(Action::AbortUploads {
            bucket: BUCKET.into(),
            key: KEY.into()
        })
    );

    let sealed = with(Reported::Report(report(NodePhase::Sealed)));
    assert_eq!(
        case.decide(&sealed),
        Step::Act(Action::Hash {
            bucket: BUCKET.into(),
            key: KEY.into(),
            version: Some("v-1".into())
        })
    );
    let mut hashed = sealed.clone();
    hashed.stored = Some(Stored::Object {
        sha256: "ab".repeat(32),
        size: 1000,
    });
    let o = outcome(case.decide(&hashed));
    assert_eq!(o.status.phase, Some(RecordingPhase::Sealed));
    assert_eq!(o.status.size_bytes, Some(1000));
    assert_eq!(reason(&o, "Ready"), format!("True/{}", r::SEALED));
    // Retention counts from the end the node reported: 30 days after 11:30.
    assert_eq!(o.status.expires_at, Some(Time(at("2026-07-01T11:30:00Z"))));

    hashed.stored = Some(Stored::Object {
        sha256: "cd".repeat(32),
        size: 1000,
    });
    let o = outcome(case.decide(&hashed));
    assert_eq!(
        reason(&o, "Stalled"),
        format!("True/{}", r::CHECKSUM_MISMATCH)
    );

    let mut elsewhere = report(NodePhase::Sealed);
    elsewhere.key = "recordings/victim.sealed".into();
    let o = outcome(case.decide(&with(Reported::Report(elsewhere))));
    assert_eq!(
        reason(&o, "Stalled"),
        format!("True/{}", r::NODE_REPORT_MISMATCH)
    );
}

#[test]
fn a_recording_may_extend_the_tenants_retention_but_never_shorten_it() {
    let mut case = Case::new(Some(RecordingPhase::Sealed));
    case.status.ended_at = Some(Time(at("2026-05-20T00:00:00Z")));
    case.status.integrity_checked_at = Some(Time(now()));
    case.spec.retention_days = Some(1);
    let o = outcome(case.decide(&Facts::default()));
    assert_eq!(
        o.status.phase,
        Some(RecordingPhase::Sealed),
        "1 day is below the tenant's 30"
    );
    assert_eq!(o.status.expires_at, Some(Time(at("2026-06-19T00:00:00Z"))));
    case.spec.retention_days = Some(60);
    let o = outcome(case.decide(&Facts::default()));
    assert_eq!(o.status.expires_at, Some(Time(at("2026-07-19T00:00:00Z"))));
}

#[test]
fn sealed_expires_unless_held_and_rechecks_its_checksum() {
    let mut case = Case::new(Some(RecordingPhase::Sealed));
    case.status.sha256 = Some("ab".repeat(32));
    case.status.version_id = Some("v-1".into());
    case.status.ended_at = Some(Time(at("2026-04-01T00:00:00Z")));
    let o = outcome(case.decide(&Facts::default()));
    assert_eq!(o.status.phase, Some(RecordingPhase::Expired));
    case.spec.legal_hold = true;
    assert!(
        matches!(
            case.decide(&Facts::default()),
            Step::Act(Action::Hash { .. })
        ),
        "held: kept and checked"
    );

    case.spec.legal_hold = false;
    case.status.ended_at = Some(Time(at("2026-05-30T00:00:00Z")));
    let check = |stored: Stored, restored: Option<Option<String>>| {
        outcome(case.decide(&Facts {
            stored: Some(stored),
            restored,
            ..Default::default()
        }))
    };
    let o = check(
        Stored::Object {
            sha256: "ab".repeat(32),
            size: 1,
        },
        None,
    );
    assert_eq!(
        reason(&o, INTEGRITY_VERIFIED),
        format!("True/{}", r::CHECKSUM_MATCHES)
    );
    assert!(o.notes.is_empty());
    let o = check(
        Stored::Object {
            sha256: "00".repeat(32),
            size: 1,
        },
        None,
    );
    assert_eq!(
        reason(&o, INTEGRITY_VERIFIED),
        format!("False/{}", r::CHECKSUM_MISMATCH)
    );
    assert!(o.notes[0].warning);
    assert_eq!(
        case.decide(&Facts {
            stored: Some(Stored::Missing("gone".into())),
            ..Default::default()
        }),
        Step::Act(Action::FindRestored {
            bucket: BUCKET.into(),
            key: KEY.into(),
            lost: "v-1".into(),
            sha256: "ab".repeat(32),
        })
    );
    let o = check(Stored::Missing("gone".into()), Some(Some("v-2".into())));
    assert_eq!(
        reason(&o, INTEGRITY_VERIFIED),
        format!("True/{}", r::RELINKED)
    );
    assert_eq!(o.status.version_id.as_deref(), Some("v-2"));
    let o = check(Stored::Missing("gone".into()), Some(None));
    assert_eq!(
        reason(&o, INTEGRITY_VERIFIED),
        format!("False/{}", r::OBJECT_MISSING)
    );

    // Checked recently: nothing to do until the next check.
    case.status.integrity_checked_at = Some(Time(at("2026-06-01T11:30:00Z")));
    let o = outcome(case.decide(&Facts::default()));
    assert!(o.requeue.is_some_and(|d| d <= Duration::from_secs(3600)));
}

#[test]
fn expired_deletes_every_version_in_the_tenants_bucket_then_rests() {
    let mut case = Case::new(Some(RecordingPhase::Expired));
    case.status.bucket = Some("sanctum-clinic-b-99999999".into());
    assert_eq!(
        case.decide(&Facts::default()),
        Step::Act(Action::DeleteVersions {
            bucket: BUCKET.into(),
            key: KEY.into()
        })
    );
    let o = outcome(case.decide(&Facts {
        deleted: Some(3),
        ..Default::default()
    }));
    assert_eq!(o.status.phase, Some(RecordingPhase::Deleted));
    assert_eq!(o.requeue, None);
    for phase in [RecordingPhase::Deleted, RecordingPhase::Failed] {
        let rest = Case::new(Some(phase));
        assert_eq!(outcome(rest.decide(&Facts::default())).status, rest.status);
    }
}

#[test]
fn deleting_the_resource_never_destroys_a_recording_early() {
    let mut held = Case::new(Some(RecordingPhase::Sealed));
    held.deleting = true;
    held.spec.legal_hold = true;
    let o = outcome(held.decide(&Facts::default()));
    assert_eq!(o.hold, Some(Hold::LegalHold));
    assert_eq!(
        reason(&o, DELETION_BLOCKED),
        format!("True/{}", r::LEGAL_HOLD)
    );

    let mut sealed = Case::new(Some(RecordingPhase::Sealed));
    sealed.deleting = true;
    sealed.status.ended_at = Some(Time(at("2026-05-30T00:00:00Z")));
    assert!(matches!(
        sealed.decide(&Facts::default()),
        Step::Act(Action::AbortUploads { .. })
    ));
    let o = outcome(sealed.decide(&Facts {
        aborted: true,
        ..Default::default()
    }));
    assert_eq!(o.hold, None, "the finalizer is released");
    assert_eq!(o.notes[0].reason, r::KEPT_FOR_RETENTION);

    sealed.status.ended_at = Some(Time(at("2026-01-01T00:00:00Z")));
    assert_eq!(
        sealed.decide(&Facts {
            aborted: true,
            ..Default::default()
        }),
        Step::Act(Action::DeleteVersions {
            bucket: BUCKET.into(),
            key: KEY.into()
        })
    );

    let mut recording = Case::new(Some(RecordingPhase::Recording));
    recording.deleting = true;
    assert_eq!(
        recording.decide(&Facts::default()),
        Step::Act(Action::Discover)
    );
    assert_eq!(recording.decide(&nodes()), Step::Act(Action::Stop(node())));
    let still = Facts {
        reported: Some(Reported::Report(report(NodePhase::Finalizing))),
        ..nodes()
    };
    assert_eq!(outcome(recording.decide(&still)).hold, Some(Hold::Sealing));
    let gone = Facts {
        reported: Some(Reported::Lost("unreachable".into())),
        ..nodes()
    };
    assert!(matches!(
        recording.decide(&gone),
        Step::Act(Action::AbortUploads { .. })
    ));

    let mut terminating = Case::new(Some(RecordingPhase::Sealed));
    terminating.deleting = true;
    terminating.terminating = true;
    assert_eq!(outcome(terminating.decide(&Facts::default())).hold, None);
}
