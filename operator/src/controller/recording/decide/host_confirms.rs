//! A tenant whose hosts confirm (`spec.recording.hostConfirms`): the start asks the node to
//! wait for the room's host, and the Recording follows the host's answer.

use std::time::Duration;

use sanctum_api::RecordingPhase;
use sanctum_api::conditions::recording::reasons as r;
use sanctum_api::control::NodePhase;

use super::tests::{Case, node, outcome, reason, report};
use super::*;

#[test]
fn a_tenant_whose_hosts_confirm_waits_for_the_host_and_fails_when_declined() {
    let mut case = Case::new(Some(RecordingPhase::Pending));
    case.policy.host_confirms = true;
    match case.decide(&Facts::default()) {
        Step::Act(Action::Start(req)) => assert!(req.await_host, "the node is told to wait"),
        other => panic!("{other:?}"),
    }
    let answered = |phase: NodePhase, reason: Option<&str>| {
        let mut report = report(phase);
        report.reason = reason.map(str::to_string);
        Facts {
            started: Some(Started::On {
                node: node(),
                report,
            }),
            ..Default::default()
        }
    };
    let o = outcome(case.decide(&answered(NodePhase::AwaitingHost, None)));
    assert_eq!(o.status.phase, Some(RecordingPhase::Pending));
    assert_eq!(
        reason(&o, "Reconciling"),
        format!("True/{}", r::AWAITING_HOST)
    );
    assert!(o.notes.is_empty(), "nothing started, nothing announced");
    assert_eq!(o.requeue, Some(Duration::from_secs(5)), "asked again soon");

    let o = outcome(case.decide(&answered(
        NodePhase::Failed,
        Some(sanctum_api::control::HOST_DECLINED),
    )));
    assert_eq!(o.status.phase, Some(RecordingPhase::Failed));
    assert_eq!(reason(&o, "Stalled"), format!("True/{}", r::HOST_DECLINED));

    let o = outcome(case.decide(&answered(NodePhase::Recording, None)));
    assert_eq!(o.status.phase, Some(RecordingPhase::Recording), "confirmed");

    let plain = Case::new(None);
    match plain.decide(&Facts::default()) {
        Step::Act(Action::Start(req)) => assert!(!req.await_host),
        other => panic!("{other:?}"),
    }
}
