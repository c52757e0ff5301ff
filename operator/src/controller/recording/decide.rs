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
use sanctum_api::control::{HOST_DECLINED, NodePhase, RecordingReport, StartRecording};
use sanctum_api::{RecordingPhase, RecordingPolicy, RecordingSpec, RecordingStatus};

use super::node::NodeEndpoint;
use crate::controller::conditions::{Desired, merge};

pub use model::*;
use status::*;

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
        Some(RecordingPhase::Deleted | RecordingPhase::Failed) => done(i.status.clone(), None),
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
        return done(status, Some(Duration::from_secs(5)));
    };
    let Some(started) = &f.started else {
        return Step::Act(Action::Start(StartRecording {
            room: i.spec.room.clone(),
            bucket: bucket.to_string(),
            key: i.key.to_string(),
            await_host: i.policy.host_confirms,
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
            match report.phase {
                NodePhase::AwaitingHost => {
                    let status = progressing(
                        i,
                        RecordingPhase::Pending,
                        r::AWAITING_HOST,
                        "waiting for the room's host to confirm the patient's consent on the visit page",
                    );
                    return done(status, Some(Duration::from_secs(5)));
                }
                NodePhase::Failed if report.reason.as_deref() == Some(HOST_DECLINED) => {
                    return fail(
                        i,
                        r::HOST_DECLINED,
                        "the room's host declined the recording; nothing was recorded",
                    );
                }
                NodePhase::Failed => {
                    let reason = sanitize(report.reason.as_deref().unwrap_or_default());
                    return fail(
                        i,
                        r::RECORDING_FAILED,
                        &format!("the media node failed: {reason}"),
                    );
                }
                NodePhase::Recording | NodePhase::Finalizing | NodePhase::Sealed => {}
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
            done(status, Some(Duration::from_secs(5)))
        }
        Started::Refused(e) => {
            let message = format!("no media node accepted the recording: {}", sanitize(e));
            let status = progressing(i, RecordingPhase::Pending, r::ROOM_NOT_ACTIVE, &message);
            done(status, Some(Duration::from_secs(5)))
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
        NodePhase::Recording if i.spec.stop => done(i.status.clone(), Some(Duration::from_secs(1))),
        NodePhase::Recording => done(i.status.clone(), Some(Duration::from_secs(10))),
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
            done(status, Some(Duration::from_secs(1)))
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
        NodePhase::AwaitingHost => fail(
            i,
            r::RECORDING_FAILED,
            "the media node reported waiting for the host after it had started recording",
        ),
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
        return done(status, Some(wait));
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

#[cfg(test)]
mod host_confirms;
mod model;
mod status;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transitions;
