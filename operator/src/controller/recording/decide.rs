//! The Recording state machine as a pure function: from the resource, the tenant's policy
//! and what this pass has observed so far, either the next observation or action to take
//! ([`Step::Act`]) or the resulting status, Events and requeue ([`Step::Done`]).
//!
//! It must not do IO or read the clock: `act.rs` performs the steps, `mod.rs` loops
//! `decide` → `act` until done. Every destructive step names the tenant's own bucket and
//! the key derived from the Recording's uid, never what status or a node reports, and a
//! node is only talked to when the tenant's own Services list it.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::events::EventType;
use sanctum_api::conditions::recording::reasons as r;
use sanctum_api::conditions::recording::{DELETION_BLOCKED, INTEGRITY_VERIFIED};
use sanctum_api::conditions::{READY, RECONCILING, STALLED};
use sanctum_api::control::{NodePhase, RecordingReport, StartRecording};
use sanctum_api::{RecordingPhase, RecordingPolicy, RecordingSpec, RecordingStatus};

use super::node::NodeEndpoint;
use crate::controller::conditions::{Desired, merge};

/// Everything `decide` reads besides what IO established.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    /// The Recording's spec.
    pub spec: &'a RecordingSpec,
    /// Its `metadata.generation`.
    pub generation: Option<i64>,
    /// Its status as stored.
    pub status: &'a RecordingStatus,
    /// The tenant's recording policy.
    pub policy: &'a RecordingPolicy,
    /// The tenant's retention in days.
    pub tenant_retention_days: i32,
    /// The tenant's bucket (from the tenant's status): the only bucket the recording uses.
    pub bucket: Option<&'a str>,
    /// `recordings/<uid>.sealed`: the only key the recording uses.
    pub key: &'a str,
    /// The Recording is being deleted.
    pub deleting: bool,
    /// Its namespace is being deleted (the tenant's deletion policy decides about objects).
    pub namespace_terminating: bool,
    /// Now.
    pub now: Timestamp,
    /// How often a sealed object is re-hashed.
    pub integrity_interval: Duration,
    /// The periodic re-check.
    pub resync: Duration,
}

/// What a media node said when asked to record.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a few values per reconcile, moved once each"
)]
pub enum Started {
    /// This node records the room.
    On {
        /// The node.
        node: NodeEndpoint,
        /// Its report.
        report: RecordingReport,
    },
    /// No node hosts a publisher in the room.
    NoHost,
    /// Nodes refused or failed (the last error).
    Refused(String),
}

/// What the recording's node said about it.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a few values per reconcile, moved once each"
)]
pub enum Reported {
    /// Its report.
    Report(RecordingReport),
    /// It is unreachable, forgot the recording, or is not one of the tenant's nodes.
    Lost(String),
}

/// What the tenant bucket holds at the recording's key.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    /// The object, hashed.
    Object {
        /// Hex SHA-256.
        sha256: String,
        /// Bytes.
        size: i64,
    },
    /// No such object (version).
    Missing(String),
}

/// What IO established in this pass; empty at the start of each reconcile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    /// Ready control endpoints of the tenant's own media Services.
    pub nodes: Option<Vec<NodeEndpoint>>,
    /// Outcome of asking nodes to record.
    pub started: Option<Started>,
    /// The recording's node's report.
    pub reported: Option<Reported>,
    /// The stored object.
    pub stored: Option<Stored>,
    /// After `sanctum restore`: the version restored from the sealed one, if any.
    pub restored: Option<Option<String>>,
    /// Incomplete uploads of the key were aborted.
    pub aborted: bool,
    /// Versions deleted.
    pub deleted: Option<u64>,
}

/// An observation or change that needs IO.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// List the tenant's media nodes.
    Discover,
    /// Ask the nodes, in turn, to record.
    Start(StartRecording),
    /// Ask the node for its report.
    Poll(NodeEndpoint),
    /// Ask the node to stop and seal.
    Stop(NodeEndpoint),
    /// Hash the object.
    Hash {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Version (the latest when `None`).
        version: Option<String>,
    },
    /// Find the version `sanctum restore` made from `lost` whose SHA-256 is `sha256`.
    FindRestored {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The version status names, which is gone.
        lost: String,
        /// The sealed SHA-256.
        sha256: String,
    },
    /// Abort incomplete uploads of the key.
    AbortUploads {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// Delete every version of the key.
    DeleteVersions {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
}

/// An Event (and audit record) to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub warning: bool,
    /// Reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

impl Note {
    /// The Event type.
    pub fn event_type(&self) -> EventType {
        if self.warning {
            EventType::Warning
        } else {
            EventType::Normal
        }
    }
}

/// What a pass ends with.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Status to write (written only if it differs from what is stored).
    pub status: RecordingStatus,
    /// Events to publish.
    pub notes: Vec<Note>,
    /// Look again after this long; `None` waits for a change.
    pub requeue: Option<Duration>,
    /// Deletion: keep the finalizer, and why (`None` releases it).
    pub hold: Option<Hold>,
}

/// Why deletion does not complete in this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Under legal hold.
    LegalHold,
    /// The node is still sealing.
    Sealing,
}

/// The next step.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a few values per reconcile, moved once each"
)]
pub enum Step {
    /// Do this, record its fact, and decide again.
    Act(Action),
    /// The pass is over.
    Done(Outcome),
}

/// Longest text of a node's failure reason kept in status (it comes from the node).
const MAX_NODE_TEXT: usize = 200;

/// Decides the next step.
pub fn decide(i: &Inputs, f: &Facts) -> Step {
    if i.deleting {
        return cleanup(i, f);
    }
    match i.status.phase {
        None | Some(RecordingPhase::Pending) => pending(i, f),
        Some(RecordingPhase::Recording | RecordingPhase::Finalizing) => recording(i, f),
        Some(RecordingPhase::Sealed) => sealed(i, f),
        Some(RecordingPhase::Expired) => expired(i, f),
        Some(RecordingPhase::Deleted | RecordingPhase::Failed) => done(i, i.status.clone(), None),
    }
}

fn pending(i: &Inputs, f: &Facts) -> Step {
    if !i.policy.enabled {
        return fail(
            i,
            r::RECORDING_DISABLED,
            "the tenant does not allow recordings (spec.recording.enabled=false)",
        );
    }
    if i.policy.require_consent && i.spec.consent.is_none() {
        return fail(
            i,
            r::CONSENT_REQUIRED,
            "the tenant requires consent and spec.consent is missing; nothing was recorded",
        );
    }
    if i.spec.stop {
        return fail(
            i,
            r::STOPPED_BEFORE_START,
            "spec.stop was set before recording started",
        );
    }
    let Some(bucket) = i.bucket else {
        let status = progressing(
            i,
            RecordingPhase::Pending,
            r::TENANT_NOT_READY,
            "the tenant has no bucket yet",
        );
        return done(i, status, Some(Duration::from_secs(5)));
    };
    let Some(started) = &f.started else {
        return Step::Act(Action::Start(StartRecording {
            room: i.spec.room.clone(),
            bucket: bucket.to_string(),
            key: i.key.to_string(),
        }));
    };
    match started {
        Started::On { node, report } => {
            if report.bucket != bucket || report.key != i.key {
                return fail(
                    i,
                    r::NODE_REPORT_MISMATCH,
                    "the media node reported another bucket or key than it was asked to record into",
                );
            }
            let mut status = progressing(
                i,
                RecordingPhase::Recording,
                r::RECORDING,
                "the media node is recording the room",
            );
            status.bucket = Some(bucket.to_string());
            status.key = Some(i.key.to_string());
            status.key_version = Some(report.key_version);
            status.media_node = Some(node.to_string());
            status.started_at = parse_time(&report.started_at);
            let note = normal(r::STARTED, format!("recording on media node {node}"));
            done_with(status, vec![note], Some(Duration::from_secs(5)))
        }
        Started::NoHost => {
            let status = progressing(
                i,
                RecordingPhase::Pending,
                r::ROOM_NOT_ACTIVE,
                "no media node hosts a publisher in this room yet",
            );
            done(i, status, Some(Duration::from_secs(5)))
        }
        Started::Refused(e) => {
            let message = format!("no media node accepted the recording: {}", sanitize(e));
            let status = progressing(i, RecordingPhase::Pending, r::ROOM_NOT_ACTIVE, &message);
            done(i, status, Some(Duration::from_secs(5)))
        }
    }
}

/// The node named by status, if the tenant's Services list it.
fn known_node(i: &Inputs, f: &Facts) -> Result<Option<NodeEndpoint>, ()> {
    let Some(nodes) = &f.nodes else {
        return Err(());
    };
    // The discovered endpoint, not the parsed address: only it names the node's pod, which
    // the control token is bound to.
    let named = i.status.media_node.as_deref().and_then(NodeEndpoint::parse);
    Ok(named.and_then(|named| nodes.iter().find(|n| **n == named).cloned()))
}

fn recording(i: &Inputs, f: &Facts) -> Step {
    let Some(reported) = &f.reported else {
        let Ok(node) = known_node(i, f) else {
            return Step::Act(Action::Discover);
        };
        return match node {
            Some(node) if i.spec.stop && i.status.phase == Some(RecordingPhase::Recording) => {
                Step::Act(Action::Stop(node))
            }
            Some(node) => Step::Act(Action::Poll(node)),
            None => lost(
                i,
                f,
                "status names no media node the tenant's Services list".to_string(),
            ),
        };
    };
    let report = match reported {
        Reported::Lost(e) => return lost(i, f, e.clone()),
        Reported::Report(report) => report,
    };
    if Some(report.bucket.as_str()) != i.bucket || report.key != i.key {
        return fail(
            i,
            r::NODE_REPORT_MISMATCH,
            "the media node reported another bucket or key than it was asked to record into",
        );
    }
    match report.phase {
        // Just asked to stop: the node reports `recording` until its recorder takes the
        // stop off its queue, so look again soon rather than at the recording cadence.
        NodePhase::Recording if i.spec.stop => {
            done(i, i.status.clone(), Some(Duration::from_secs(1)))
        }
        NodePhase::Recording => done(i, i.status.clone(), Some(Duration::from_secs(10))),
        NodePhase::Finalizing => {
            let mut status = i.status.clone();
            if status.phase != Some(RecordingPhase::Finalizing) {
                status = progressing(
                    i,
                    RecordingPhase::Finalizing,
                    r::FINALIZING,
                    "the media node is completing the upload",
                );
                status.ended_at = report.ended_at.as_deref().and_then(parse_time);
            }
            done(i, status, Some(Duration::from_secs(1)))
        }
        NodePhase::Failed => {
            let reason = sanitize(report.reason.as_deref().unwrap_or_default());
            fail(
                i,
                r::RECORDING_FAILED,
                &format!("the media node failed: {reason}"),
            )
        }
        NodePhase::Sealed => seal(i, f, report),
    }
}

/// The node is gone or forgot the recording: abort the upload (in the tenant's bucket, at
/// the recording's key) so no incomplete object lingers, and say so.
fn lost(i: &Inputs, f: &Facts, why: String) -> Step {
    if let (Some(bucket), false) = (i.bucket, f.aborted) {
        return Step::Act(Action::AbortUploads {
            bucket: bucket.to_string(),
            key: i.key.to_string(),
        });
    }
    fail(
        i,
        r::MEDIA_NODE_LOST,
        &format!(
            "the media node lost the recording ({}); its upload was aborted",
            sanitize(&why)
        ),
    )
}

fn seal(i: &Inputs, f: &Facts, report: &RecordingReport) -> Step {
    let bucket = i.bucket.unwrap_or_default();
    let Some(stored) = &f.stored else {
        return Step::Act(Action::Hash {
            bucket: bucket.to_string(),
            key: i.key.to_string(),
            version: report.version_id.clone(),
        });
    };
    let (sha, size) = match stored {
        Stored::Object { sha256, size } => (sha256, *size),
        Stored::Missing(e) => {
            return fail(
                i,
                r::OBJECT_MISSING,
                &format!(
                    "the media node reported the recording sealed, but the object is missing: {}",
                    sanitize(e)
                ),
            );
        }
    };
    if Some(sha) != report.sha256.as_ref() {
        return fail(
            i,
            r::CHECKSUM_MISMATCH,
            "the stored object does not match the checksum the media node computed while uploading",
        );
    }
    let ended = report
        .ended_at
        .as_deref()
        .and_then(parse_time)
        .unwrap_or(Time(i.now));
    let mut status = settled(
        i,
        RecordingPhase::Sealed,
        r::SEALED,
        "stored, encrypted and checksummed",
    );
    status.bucket = Some(bucket.to_string());
    status.key = Some(i.key.to_string());
    status.version_id = report.version_id.clone();
    status.size_bytes = Some(size);
    status.sha256 = Some(sha.clone());
    status.key_version = Some(report.key_version);
    status.expires_at = Some(expires_at(&ended, retention_days(i)));
    status.ended_at = Some(ended);
    status.integrity_checked_at = Some(Time(i.now));
    let note = normal(
        r::SEALED,
        format!("sealed: {size} bytes, checksum verified"),
    );
    done_with(status, vec![note], Some(Duration::from_secs(1)))
}

fn sealed(i: &Inputs, f: &Facts) -> Step {
    let ended = i.status.ended_at.clone().unwrap_or(Time(i.now));
    let expires = expires_at(&ended, retention_days(i));
    if expires.0 <= i.now && !i.spec.legal_hold {
        let mut status = progressing(
            i,
            RecordingPhase::Expired,
            r::EXPIRED,
            "retention has passed; deleting the object and its wrapped data key",
        );
        status.expires_at = Some(expires);
        return done_with(
            status,
            vec![normal(r::EXPIRED, "retention passed".into())],
            Some(Duration::from_secs(1)),
        );
    }
    let mut status = i.status.clone();
    status.expires_at = Some(expires.clone());
    let due = status.integrity_checked_at.as_ref().is_none_or(|t| {
        i.now.duration_since(t.0)
            >= SignedDuration::try_from(i.integrity_interval).unwrap_or(SignedDuration::MAX)
    });
    let wait = Duration::try_from(expires.0.duration_since(i.now))
        .unwrap_or(Duration::ZERO)
        .min(i.integrity_interval)
        .min(i.resync)
        .max(Duration::from_secs(1));
    let Some(bucket) = i.bucket.filter(|_| due) else {
        return done(i, status, Some(wait));
    };
    let Some(stored) = &f.stored else {
        return Step::Act(Action::Hash {
            bucket: bucket.to_string(),
            key: i.key.to_string(),
            version: status.version_id.clone(),
        });
    };
    let (ok, reason, message) = match stored {
        Stored::Object { sha256, .. } if Some(sha256) == status.sha256.as_ref() => (
            true,
            r::CHECKSUM_MATCHES,
            "the stored object matches status.sha256".to_string(),
        ),
        Stored::Object { .. } => (
            false,
            r::CHECKSUM_MISMATCH,
            "the stored object does NOT match status.sha256: it was altered or replaced"
                .to_string(),
        ),
        Stored::Missing(e) => {
            let (Some(lost), Some(sha)) = (status.version_id.clone(), status.sha256.clone()) else {
                return integrity(
                    i,
                    status,
                    false,
                    r::OBJECT_MISSING,
                    format!("the stored object is missing: {}", sanitize(e)),
                    wait,
                );
            };
            match &f.restored {
                None => {
                    return Step::Act(Action::FindRestored {
                        bucket: bucket.to_string(),
                        key: i.key.to_string(),
                        lost,
                        sha256: sha,
                    });
                }
                Some(Some(restored)) => {
                    let message = format!(
                        "version {lost} is gone; the object restored from it (version {restored}) matches status.sha256 and is now this recording's"
                    );
                    status.version_id = Some(restored.clone());
                    (true, r::RELINKED, message)
                }
                Some(None) => (
                    false,
                    r::OBJECT_MISSING,
                    format!("the stored object is missing: {}", sanitize(e)),
                ),
            }
        }
    };
    integrity(i, status, ok, reason, message, wait)
}

fn integrity(
    i: &Inputs,
    mut status: RecordingStatus,
    ok: bool,
    reason: &'static str,
    message: String,
    wait: Duration,
) -> Step {
    status.integrity_checked_at = Some(Time(i.now));
    let mut desired = kstatus_conditions(&status);
    desired.push(if ok {
        Desired::yes(INTEGRITY_VERIFIED, reason, message.clone())
    } else {
        Desired::no(INTEGRITY_VERIFIED, reason, message.clone())
    });
    status.conditions = merge(&status.conditions, &desired, i.generation, &Time(i.now));
    let notes = if !ok {
        vec![Note {
            warning: true,
            reason,
            message,
        }]
    } else if reason == r::RELINKED {
        vec![normal(reason, message)]
    } else {
        vec![]
    };
    done_with(status, notes, Some(wait))
}

fn expired(i: &Inputs, f: &Facts) -> Step {
    if let (Some(bucket), None) = (i.bucket, f.deleted) {
        return Step::Act(Action::DeleteVersions {
            bucket: bucket.to_string(),
            key: i.key.to_string(),
        });
    }
    let status = settled(
        i,
        RecordingPhase::Deleted,
        r::DELETED,
        "retention passed; the object and its wrapped data key were deleted",
    );
    let note = normal(
        r::DELETED,
        "object and wrapped data key deleted after retention".into(),
    );
    done_with(status, vec![note], None)
}

/// Deletion of the resource. Refused under legal hold. A recording in progress is stopped
/// and sealed first. A sealed object within its retention stays in the bucket (the
/// bucket's lifecycle removes it when the tenant's retention ends): deleting the resource
/// never destroys a recording early. Incomplete uploads are aborted; an expired object
/// is deleted. When the namespace itself is going, the tenant's deletion policy decides.
fn cleanup(i: &Inputs, f: &Facts) -> Step {
    if i.spec.legal_hold {
        let mut status = i.status.clone();
        let mut desired = kstatus_conditions(&status);
        desired.push(Desired::yes(
            DELETION_BLOCKED,
            r::LEGAL_HOLD,
            "deletion is refused while spec.legalHold is true",
        ));
        status.conditions = merge(&status.conditions, &desired, i.generation, &Time(i.now));
        return Step::Done(Outcome {
            status,
            notes: vec![],
            requeue: Some(i.resync),
            hold: Some(Hold::LegalHold),
        });
    }
    if i.namespace_terminating {
        return release(i.status.clone(), vec![]);
    }
    if matches!(
        i.status.phase,
        Some(RecordingPhase::Recording | RecordingPhase::Finalizing)
    ) {
        match (&f.reported, known_node(i, f)) {
            (None, Err(())) => return Step::Act(Action::Discover),
            (None, Ok(Some(node))) => return Step::Act(Action::Stop(node)),
            (Some(Reported::Report(report)), _)
                if matches!(report.phase, NodePhase::Recording | NodePhase::Finalizing) =>
            {
                return Step::Done(Outcome {
                    status: i.status.clone(),
                    notes: vec![],
                    requeue: Some(Duration::from_secs(1)),
                    hold: Some(Hold::Sealing),
                });
            }
            _ => {}
        }
    }
    let Some(bucket) = i.bucket else {
        return release(i.status.clone(), vec![]);
    };
    let sealed_now =
        matches!(&f.reported, Some(Reported::Report(r)) if r.phase == NodePhase::Sealed);
    let retained = matches!(i.status.phase, Some(RecordingPhase::Sealed)) || sealed_now;
    if !f.aborted && !matches!(i.status.phase, Some(RecordingPhase::Deleted)) {
        return Step::Act(Action::AbortUploads {
            bucket: bucket.to_string(),
            key: i.key.to_string(),
        });
    }
    let ended = i.status.ended_at.clone().unwrap_or(Time(i.now));
    let expired = expires_at(&ended, retention_days(i)).0 <= i.now
        || matches!(i.status.phase, Some(RecordingPhase::Expired));
    if retained && !expired {
        let until = expires_at(&ended, retention_days(i)).0;
        let note = normal(
            r::KEPT_FOR_RETENTION,
            format!(
                "the resource was deleted; the sealed object stays until its retention ends ({until})"
            ),
        );
        return release(i.status.clone(), vec![note]);
    }
    if expired && f.deleted.is_none() {
        return Step::Act(Action::DeleteVersions {
            bucket: bucket.to_string(),
            key: i.key.to_string(),
        });
    }
    release(i.status.clone(), vec![])
}

fn release(status: RecordingStatus, notes: Vec<Note>) -> Step {
    Step::Done(Outcome {
        status,
        notes,
        requeue: None,
        hold: None,
    })
}

/// Retention that applies: the recording may extend the tenant's, never shorten it.
pub fn retention_days(i: &Inputs) -> i64 {
    i64::from(
        i.spec
            .retention_days
            .unwrap_or(i.tenant_retention_days)
            .max(i.tenant_retention_days),
    )
}

fn expires_at(ended: &Time, days: i64) -> Time {
    Time(ended.0 + SignedDuration::from_hours(24 * days))
}

fn parse_time(s: &str) -> Option<Time> {
    s.parse::<Timestamp>().ok().map(Time)
}

/// Text a node sent, as it may be kept in status and Events: printable, one line, short.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_NODE_TEXT)
        .collect()
}

fn normal(reason: &'static str, message: String) -> Note {
    Note {
        warning: false,
        reason,
        message,
    }
}

fn done(i: &Inputs, status: RecordingStatus, requeue: Option<Duration>) -> Step {
    let _ = i;
    done_with(status, vec![], requeue)
}

fn done_with(status: RecordingStatus, notes: Vec<Note>, requeue: Option<Duration>) -> Step {
    Step::Done(Outcome {
        status,
        notes,
        requeue,
        hold: None,
    })
}

/// Failed: Stalled for kstatus, a Warning, and nothing more to do.
fn fail(i: &Inputs, reason: &'static str, message: &str) -> Step {
    let mut status = i.status.clone();
    status.phase = Some(RecordingPhase::Failed);
    status.conditions = merge(
        &status.conditions,
        &[
            Desired::no(READY, reason, message),
            Desired::no(RECONCILING, reason, message),
            Desired::yes(STALLED, reason, message),
        ],
        i.generation,
        &Time(i.now),
    );
    let notes = if i.status.phase == Some(RecordingPhase::Failed) {
        vec![]
    } else {
        vec![Note {
            warning: true,
            reason,
            message: message.to_string(),
        }]
    };
    done_with(status, notes, None)
}

/// The status with `phase`, still moving (Ready False, Reconciling True).
fn progressing(i: &Inputs, phase: RecordingPhase, reason: &str, message: &str) -> RecordingStatus {
    with_kstatus(i, phase, false, reason, message)
}

/// The status with `phase`, at rest (Ready True).
fn settled(i: &Inputs, phase: RecordingPhase, reason: &str, message: &str) -> RecordingStatus {
    with_kstatus(i, phase, true, reason, message)
}

fn with_kstatus(
    i: &Inputs,
    phase: RecordingPhase,
    ready: bool,
    reason: &str,
    message: &str,
) -> RecordingStatus {
    let mut status = i.status.clone();
    status.phase = Some(phase);
    let mut desired = if ready {
        vec![
            Desired::yes(READY, reason, message),
            Desired::no(RECONCILING, reason, message),
        ]
    } else {
        vec![
            Desired::no(READY, reason, message),
            Desired::yes(RECONCILING, reason, message),
        ]
    };
    desired.push(Desired::no(STALLED, reason, message));
    desired.extend(
        status
            .conditions
            .iter()
            .filter(|c| c.type_ == INTEGRITY_VERIFIED)
            .map(Desired::from_condition),
    );
    status.conditions = merge(&status.conditions, &desired, i.generation, &Time(i.now));
    status
}

/// The kstatus conditions as they stand, to merge another condition beside them.
fn kstatus_conditions(status: &RecordingStatus) -> Vec<Desired> {
    status
        .conditions
        .iter()
        .filter(|c| [READY, RECONCILING, STALLED].contains(&c.type_.as_str()))
        .map(Desired::from_condition)
        .collect()
}

#[cfg(test)]
mod tests;
