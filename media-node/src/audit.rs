//! The session log in the tenant's audit trail.
//!
//! Every line the node logs under `sanctum::session` (joins, publishes, subscribes,
//! leaves, recording starts and stops) and `sanctum::auth` (refused requests) also
//! becomes an audit record in this process's own hash chain,
//! `tenants/<tenant>/nodes/<pod>.<key id>/` of the audit bucket (Object Lock), beside the
//! operator's chain of reconciles; `sanctum audit verify` walks both. The chain starts by
//! stating the public half of a key the process makes at start and keeps in memory only,
//! and every batch is signed with it, so no other process holding the same cloud
//! credentials (another node of the tenant) can add to it. Refused requests are counted by
//! reason and written as one record per flush interval, so a flood of bad requests costs
//! one record every few seconds, not one each. The lines carry opaque ids only (session,
//! room, user), never a token, SDP, address or key, so neither do the records.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sanctum_audit::sign::KeyError;
use sanctum_audit::store::AuditStore;
use sanctum_audit::trail::{Meter, Trail, Writer};
use sanctum_audit::{Entry, Signer, audit_key_entry};
use tokio::task::JoinHandle;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

use crate::metrics::Metrics;
use crate::session_log;

/// Log targets whose events are audited.
const AUDITED: [&str; 2] = [session_log::SESSION, session_log::AUTH];

/// The node's session trail: a tracing layer that queues audited log lines, and the
/// task that writes them.
pub struct SessionTrail {
    slot: Arc<Mutex<Option<Trail>>>,
    task: JoinHandle<()>,
}

impl SessionTrail {
    /// Starts shipping `tenant`'s session log lines of node `node` to `store`, in a chain
    /// of this process's own, signed with a key made now.
    pub fn start(
        store: AuditStore,
        tenant: &str,
        node: &str,
        metrics: Metrics,
        flush: Duration,
    ) -> Result<(Self, SessionLayer), KeyError> {
        let signer = Signer::generate()?;
        // A restarted container is a new process with a new key: it starts a new chain
        // instead of appending to one whose key it does not hold.
        let chain = format!("{node}.{}", signer.id());
        let first = audit_key_entry(tenant, &jiff::Timestamp::now().to_string(), &signer);
        let (trail, task) = Trail::start(store, Writer::Node(chain), signer, metrics, flush);
        trail.record(first);
        let slot = Arc::new(Mutex::new(Some(trail)));
        let refusals = Arc::new(Mutex::new(BTreeMap::new()));
        tokio::spawn(count_refusals(
            slot.clone(),
            refusals.clone(),
            tenant.to_string(),
            flush,
        ));
        let layer = SessionLayer {
            slot: slot.clone(),
            tenant: tenant.to_string(),
            refusals,
        };
        Ok((Self { slot, task }, layer))
    }

    /// Stops queueing and waits (up to `wait`) for what is queued to be written.
    pub async fn close(self, wait: Duration) {
        // The refusal counter writes what it counted before it sees the slot empty.
        tokio::time::sleep(Duration::from_millis(10)).await;
        self.slot.lock().expect("trail slot lock").take();
        if tokio::time::timeout(wait, self.task).await.is_err() {
            tracing::warn!("session log records still queued at exit were not written");
        }
    }
}

/// Refused requests by reason since the last record.
type Refusals = Arc<Mutex<BTreeMap<String, u64>>>;

/// Every `flush`, the refusals counted since the last time become one record.
async fn count_refusals(
    slot: Arc<Mutex<Option<Trail>>>,
    refusals: Refusals,
    tenant: String,
    flush: Duration,
) {
    let mut tick = tokio::time::interval(flush);
    loop {
        tick.tick().await;
        let counted = std::mem::take(&mut *refusals.lock().expect("refusals lock"));
        let slot = slot.lock().expect("trail slot lock");
        let Some(trail) = slot.as_ref() else { return };
        if !counted.is_empty() {
            trail.record(refusals_entry(&tenant, &counted));
        }
    }
}

/// One record for the requests refused in an interval, by reason.
fn refusals_entry(tenant: &str, counted: &BTreeMap<String, u64>) -> Entry {
    let mut actions = String::new();
    for (reason, n) in counted {
        if !actions.is_empty() {
            actions.push(' ');
        }
        let _ = write!(actions, "{reason}={n}");
    }
    Entry {
        tenant: tenant.to_string(),
        time: jiff::Timestamp::now().to_string(),
        controller: "media-node".into(),
        kind: "Request".into(),
        namespace: None,
        name: "refusals".into(),
        uid: None,
        generation: None,
        actions,
        outcome: "refused".into(),
    }
}

/// The tracing layer feeding [`SessionTrail`].
pub struct SessionLayer {
    slot: Arc<Mutex<Option<Trail>>>,
    tenant: String,
    refusals: Refusals,
}

impl<S: tracing::Subscriber> Layer<S> for SessionLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if !AUDITED.contains(&target) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if target == session_log::AUTH {
            let reason = fields.0.get("reason").cloned().unwrap_or_default();
            *self
                .refusals
                .lock()
                .expect("refusals lock")
                .entry(reason)
                .or_default() += 1;
            return;
        }
        let entry = entry(&self.tenant, fields.0);
        if let Some(trail) = self.slot.lock().expect("trail slot lock").as_ref() {
            trail.record(entry);
        }
    }
}

/// An audit entry from one session log line: the event is the outcome, the session (or
/// recording, or room) the object, every field the actions.
fn entry(tenant: &str, fields: BTreeMap<String, String>) -> Entry {
    let outcome = fields.get("event").cloned().unwrap_or_default();
    let (kind, name) = ["session", "recording", "room"]
        .iter()
        .find_map(|k| fields.get(*k).map(|v| (*k, v.clone())))
        .unwrap_or(("request", String::new()));
    let mut actions = String::new();
    for (key, value) in fields.iter().filter(|(k, _)| k.as_str() != "message") {
        if !actions.is_empty() {
            actions.push(' ');
        }
        let _ = write!(actions, "{key}={value}");
    }
    Entry {
        tenant: tenant.to_string(),
        time: jiff::Timestamp::now().to_string(),
        controller: "media-node".into(),
        kind: match kind {
            "recording" => "Recording".into(),
            _ => "Session".into(),
        },
        namespace: None,
        name,
        uid: None,
        generation: None,
        actions,
        outcome,
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl Meter for Metrics {
    fn shipped(&self, records: u64) {
        self.audit_shipped.inc_by(records);
    }

    fn ship_failed(&self) {
        self.audit_failures.inc();
    }

    fn pending(&self, records: usize) {
        self.audit_pending
            .set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    fn lag(&self, seconds: f64) {
        self.audit_lag.set(seconds);
    }

    fn dropped(&self, records: u64) {
        self.audit_dropped.inc_by(records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_session_line_becomes_a_session_record() {
        let e = entry(
            "clinic-a",
            fields(&[
                ("message", "session"),
                ("event", "join"),
                ("session", "a1b2"),
                ("room", "room-7"),
                ("user", "u-42"),
                ("role", "host"),
            ]),
        );
        assert_eq!(
            (e.kind.as_str(), e.name.as_str(), e.outcome.as_str()),
            ("Session", "a1b2", "join")
        );
        assert_eq!(
            e.actions,
            "event=join role=host room=room-7 session=a1b2 user=u-42"
        );
        assert_eq!(e.controller, "media-node");
    }

    #[test]
    fn recordings_are_named_for_what_they_are_and_refusals_are_counted() {
        let r = entry(
            "clinic-a",
            fields(&[
                ("event", "record-start"),
                ("recording", "visit-1"),
                ("room", "r"),
            ]),
        );
        assert_eq!((r.kind.as_str(), r.name.as_str()), ("Recording", "visit-1"));
        let counted = BTreeMap::from([
            ("bad-signature".to_string(), 1200),
            ("expired".to_string(), 3),
        ]);
        let refused = refusals_entry("clinic-a", &counted);
        assert_eq!(refused.kind, "Request");
        assert_eq!(refused.outcome, "refused");
        assert_eq!(refused.actions, "bad-signature=1200 expired=3");
    }
}
