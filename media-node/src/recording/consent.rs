//! Recordings that wait for the room's host. A start the operator sends with `awaitHost`
//! (the tenant's `spec.recording.hostConfirms`) is held here and shown to the room's host
//! on the visit page; only the host's confirmation of the patient's consent hands it to
//! the recorders. Nothing is recorded while a request waits, and a declined request is
//! reported as failed.
//!
//! It must not start recorders or read the clock: the handlers pass the time and start
//! what [`Awaiting::decide`] returns.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sanctum_api::control::{HOST_DECLINED, NodePhase, RecordingReport, StartRecording};

/// A request not asked for again for this long is forgotten: the operator repeats its
/// start every few seconds while the Recording waits, so a deleted or failed Recording
/// stops prompting the host soon after.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);

/// What the room's host answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The patient agreed: record.
    Granted,
    /// Do not record.
    Declined,
}

/// The recording state of a room as its participants see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomRecording {
    /// Nothing is recorded or asked for.
    Off,
    /// A recording was asked for and waits for the host.
    AwaitingHost,
    /// Recorded now.
    On,
}

impl RoomRecording {
    /// As the session resource spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomRecording::Off => "off",
            RoomRecording::AwaitingHost => "awaiting-host",
            RoomRecording::On => "on",
        }
    }
}

/// The request id exists for another room or object.
#[derive(Debug, thiserror::Error)]
#[error("recording {0} exists with other parameters")]
pub struct Conflict(pub String);

struct Waiting {
    req: StartRecording,
    asked_at: String,
    last_asked: Instant,
    declined: bool,
}

impl Waiting {
    fn report(&self) -> RecordingReport {
        let phase = if self.declined {
            NodePhase::Failed
        } else {
            NodePhase::AwaitingHost
        };
        RecordingReport {
            reason: self.declined.then(|| HOST_DECLINED.to_string()),
            ..RecordingReport::begun(phase, &self.req, 0, self.asked_at.clone())
        }
    }
}

/// Recording requests waiting for their room's host, by recording id.
#[derive(Default)]
pub struct Awaiting {
    requests: Mutex<HashMap<String, Waiting>>,
}

impl Awaiting {
    /// Holds (or, asked again, keeps) request `id` until the host decides; its report.
    pub fn ask(
        &self,
        id: &str,
        req: &StartRecording,
        now: Instant,
        at: &str,
    ) -> Result<RecordingReport, Conflict> {
        let mut requests = self.lock(now);
        let waiting = requests.entry(id.to_string()).or_insert_with(|| Waiting {
            req: req.clone(),
            asked_at: at.to_string(),
            last_asked: now,
            declined: false,
        });
        if waiting.req != *req {
            return Err(Conflict(id.to_string()));
        }
        waiting.last_asked = now;
        Ok(waiting.report())
    }

    /// The report of request `id`, while it waits or after it was declined.
    pub fn report(&self, id: &str, now: Instant) -> Option<RecordingReport> {
        self.lock(now).get(id).map(Waiting::report)
    }

    /// Whether a request for `room` waits for its host.
    pub fn waits(&self, room: &str, now: Instant) -> bool {
        self.lock(now)
            .values()
            .any(|w| w.req.room == room && !w.declined)
    }

    /// The host's answer for `room`: the requests to start now (granted; they leave this
    /// list), none when declined (they stay, reported failed, until forgotten). `None`
    /// when nothing waited.
    pub fn decide(
        &self,
        room: &str,
        decision: Decision,
        now: Instant,
    ) -> Option<Vec<(String, StartRecording)>> {
        let mut requests = self.lock(now);
        let ids: Vec<String> = requests
            .iter()
            .filter(|(_, w)| w.req.room == room && !w.declined)
            .map(|(id, _)| id.clone())
            .collect();
        if ids.is_empty() {
            return None;
        }
        let mut start = Vec::new();
        for id in ids {
            match decision {
                Decision::Granted => {
                    let waiting = requests.remove(&id).expect("listed above");
                    start.push((id, waiting.req));
                }
                Decision::Declined => {
                    if let Some(w) = requests.get_mut(&id) {
                        w.declined = true;
                    }
                }
            }
        }
        Some(start)
    }

    /// The list without what was not asked for within [`FORGET_AFTER`].
    fn lock(&self, now: Instant) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        requests.retain(|_, w| now.saturating_duration_since(w.last_asked) < FORGET_AFTER);
        requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(room: &str) -> StartRecording {
        StartRecording {
            room: room.into(),
            bucket: "b".into(),
            key: "recordings/u.sealed".into(),
            await_host: true,
        }
    }

    #[test]
    fn a_request_waits_until_the_host_grants_it_and_is_then_handed_over_once() {
        let a = Awaiting::default();
        let t0 = Instant::now();
        let report = a
            .ask("r1", &req("room-1"), t0, "2026-12-06T10:00:00Z")
            .expect("ask");
        assert_eq!(report.phase, NodePhase::AwaitingHost);
        assert!(a.waits("room-1", t0));
        assert!(!a.waits("room-2", t0));
        assert_eq!(
            a.decide("room-2", Decision::Granted, t0),
            None,
            "nothing waits there"
        );
        let start = a.decide("room-1", Decision::Granted, t0).expect("waited");
        assert_eq!(start, vec![("r1".to_string(), req("room-1"))]);
        assert!(!a.waits("room-1", t0));
        assert_eq!(
            a.report("r1", t0),
            None,
            "the recorders report it from now on"
        );
        assert_eq!(a.decide("room-1", Decision::Granted, t0), None);
    }

    #[test]
    fn a_declined_request_is_reported_failed_and_never_started() {
        let a = Awaiting::default();
        let t0 = Instant::now();
        a.ask("r1", &req("room-1"), t0, "t").expect("ask");
        assert_eq!(a.decide("room-1", Decision::Declined, t0), Some(vec![]));
        let report = a.report("r1", t0).expect("kept");
        assert_eq!(report.phase, NodePhase::Failed);
        assert_eq!(report.reason.as_deref(), Some(HOST_DECLINED));
        assert!(!a.waits("room-1", t0), "the host is not asked again");
        let again = a.ask("r1", &req("room-1"), t0, "t").expect("ask again");
        assert_eq!(
            again.phase,
            NodePhase::Failed,
            "asking again does not reopen it"
        );
        assert_eq!(a.decide("room-1", Decision::Granted, t0), None);
    }

    #[test]
    fn requests_not_asked_for_again_are_forgotten_and_ids_keep_their_parameters() {
        let a = Awaiting::default();
        let t0 = Instant::now();
        a.ask("r1", &req("room-1"), t0, "t").expect("ask");
        assert!(
            a.ask("r1", &req("room-2"), t0, "t").is_err(),
            "same id, other room"
        );
        let later = t0 + FORGET_AFTER / 2;
        a.ask("r1", &req("room-1"), later, "t")
            .expect("asked again");
        assert!(
            a.waits("room-1", t0 + FORGET_AFTER),
            "renewed by the second ask"
        );
        assert!(!a.waits("room-1", later + FORGET_AFTER), "forgotten");
        assert_eq!(a.report("r1", later + FORGET_AFTER), None);
    }
}
