//! Every phase transition of a Recording, as one table: from a phase and what a pass
//! observed, the step `decide` takes (an action, or the phase it ends the pass in).

use sanctum_api::RecordingPhase::{self, *};
use sanctum_api::control::NodePhase;

use super::tests::{Case, at, node, nodes, report};
use super::*;

/// What the row expects.
#[derive(Debug, PartialEq)]
enum Expect {
    /// An action of this kind.
    Act(&'static str),
    /// The pass ends in this phase.
    Phase(Option<RecordingPhase>),
}

fn kind(action: &Action) -> &'static str {
    match action {
        Action::Discover => "Discover",
        Action::Start(_) => "Start",
        Action::Poll(_) => "Poll",
        Action::Stop(_) => "Stop",
        Action::Hash { .. } => "Hash",
        Action::FindRestored { .. } => "FindRestored",
        Action::AbortUploads { .. } => "AbortUploads",
        Action::DeleteVersions { .. } => "DeleteVersions",
    }
}

fn with_report(phase: NodePhase) -> Facts {
    Facts {
        reported: Some(Reported::Report(report(phase))),
        ..nodes()
    }
}

#[test]
fn every_phase_moves_as_the_table_says() {
    let case = |phase: Option<RecordingPhase>, tweak: fn(&mut Case)| {
        let mut c = Case::new(phase);
        tweak(&mut c);
        c
    };
    let old = |c: &mut Case| c.status.ended_at = Some(Time(at("2026-01-01T00:00:00Z")));
    let rows: Vec<(&str, Case, Facts, Expect)> = vec![
        (
            "new: starts",
            case(None, |_| {}),
            Facts::default(),
            Expect::Act("Start"),
        ),
        (
            "new, recording disabled: fails",
            case(None, |c| c.policy.enabled = false),
            Facts::default(),
            Expect::Phase(Some(Failed)),
        ),
        (
            "pending, started on a node: recording",
            case(Some(Pending), |_| {}),
            Facts {
                started: Some(Started::On {
                    node: node(),
                    report: report(NodePhase::Recording),
                }),
                ..Default::default()
            },
            Expect::Phase(Some(Recording)),
        ),
        (
            "pending, the node waits for the host: waits",
            case(Some(Pending), |c| c.policy.host_confirms = true),
            Facts {
                started: Some(Started::On {
                    node: node(),
                    report: report(NodePhase::AwaitingHost),
                }),
                ..Default::default()
            },
            Expect::Phase(Some(Pending)),
        ),
        (
            "pending, the node failed at start: fails",
            case(Some(Pending), |_| {}),
            Facts {
                started: Some(Started::On {
                    node: node(),
                    report: report(NodePhase::Failed),
                }),
                ..Default::default()
            },
            Expect::Phase(Some(Failed)),
        ),
        (
            "pending, no node hosts the room: waits",
            case(Some(Pending), |_| {}),
            Facts {
                started: Some(Started::NoHost),
                ..Default::default()
            },
            Expect::Phase(Some(Pending)),
        ),
        (
            "recording: finds its node",
            case(Some(Recording), |_| {}),
            Facts::default(),
            Expect::Act("Discover"),
        ),
        (
            "recording: asks its node",
            case(Some(Recording), |_| {}),
            nodes(),
            Expect::Act("Poll"),
        ),
        (
            "recording, stop asked: stops the node",
            case(Some(Recording), |c| c.spec.stop = true),
            nodes(),
            Expect::Act("Stop"),
        ),
        (
            "recording, node finalizing: finalizing",
            case(Some(Recording), |_| {}),
            with_report(NodePhase::Finalizing),
            Expect::Phase(Some(Finalizing)),
        ),
        (
            "recording, node lost: aborts the upload",
            case(Some(Recording), |_| {}),
            Facts {
                reported: Some(Reported::Lost("unreachable".into())),
                ..nodes()
            },
            Expect::Act("AbortUploads"),
        ),
        (
            "recording, node lost, upload aborted: failed",
            case(Some(Recording), |_| {}),
            Facts {
                reported: Some(Reported::Lost("unreachable".into())),
                aborted: true,
                ..nodes()
            },
            Expect::Phase(Some(Failed)),
        ),
        (
            "finalizing, node sealed: the object is hashed first",
            case(Some(Finalizing), |_| {}),
            with_report(NodePhase::Sealed),
            Expect::Act("Hash"),
        ),
        (
            "finalizing, node sealed, object matches the node's SHA-256: sealed",
            case(Some(Finalizing), |_| {}),
            Facts {
                stored: Some(Stored::Object {
                    sha256: "ab".repeat(32),
                    size: 1000,
                }),
                ..with_report(NodePhase::Sealed)
            },
            Expect::Phase(Some(Sealed)),
        ),
        (
            "finalizing, node sealed, object differs: failed",
            case(Some(Finalizing), |_| {}),
            Facts {
                stored: Some(Stored::Object {
                    sha256: "00".repeat(32),
                    size: 1000,
                }),
                ..with_report(NodePhase::Sealed)
            },
            Expect::Phase(Some(Failed)),
        ),
        (
            "sealed past retention: expired",
            case(Some(Sealed), old),
            Facts::default(),
            Expect::Phase(Some(Expired)),
        ),
        (
            "sealed past retention, on legal hold: checked, kept",
            case(Some(Sealed), |c| {
                c.status.ended_at = Some(Time(at("2026-01-01T00:00:00Z")));
                c.spec.legal_hold = true;
            }),
            Facts::default(),
            Expect::Act("Hash"),
        ),
        (
            "expired: deletes every version",
            case(Some(Expired), |_| {}),
            Facts::default(),
            Expect::Act("DeleteVersions"),
        ),
        (
            "expired, versions deleted: deleted",
            case(Some(Expired), |_| {}),
            Facts {
                deleted: Some(3),
                ..Default::default()
            },
            Expect::Phase(Some(Deleted)),
        ),
        (
            "deleted: rests",
            case(Some(Deleted), |_| {}),
            Facts::default(),
            Expect::Phase(Some(Deleted)),
        ),
        (
            "failed: rests",
            case(Some(Failed), |_| {}),
            Facts::default(),
            Expect::Phase(Some(Failed)),
        ),
    ];
    let mut wrong = Vec::new();
    for (name, c, facts, expect) in &rows {
        let got = match c.decide(facts) {
            Step::Act(action) => Expect::Act(kind(&action)),
            Step::Done(outcome) => Expect::Phase(outcome.status.phase),
        };
        if got != *expect {
            wrong.push(format!("{name}: expected {expect:?}, got {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
}
