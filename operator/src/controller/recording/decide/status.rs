//! Status that `decide` ends with: the phase, its kstatus conditions and the outcome.

use super::*;

pub(super) fn done(status: RecordingStatus, requeue: Option<Duration>) -> Step {
    done_with(status, vec![], requeue)
}

pub(super) fn done_with(
    status: RecordingStatus,
    notes: Vec<Note>,
    requeue: Option<Duration>,
) -> Step {
    Step::Done(Outcome {
        status,
        notes,
        requeue,
        hold: None,
    })
}

/// Failed: Stalled for kstatus, a Warning, and nothing more to do.
pub(super) fn fail(i: &Inputs, reason: &'static str, message: &str) -> Step {
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
pub(super) fn progressing(
    i: &Inputs,
    phase: RecordingPhase,
    reason: &str,
    message: &str,
) -> RecordingStatus {
    with_kstatus(i, phase, false, reason, message)
}

/// The status with `phase`, at rest (Ready True).
pub(super) fn settled(
    i: &Inputs,
    phase: RecordingPhase,
    reason: &str,
    message: &str,
) -> RecordingStatus {
    with_kstatus(i, phase, true, reason, message)
}

pub(super) fn with_kstatus(
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
pub(super) fn kstatus_conditions(status: &RecordingStatus) -> Vec<Desired> {
    status
        .conditions
        .iter()
        .filter(|c| [READY, RECONCILING, STALLED].contains(&c.type_.as_str()))
        .map(Desired::from_condition)
        .collect()
}
