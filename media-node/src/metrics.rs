//! Prometheus metrics of the media node, under `sanctum_media_`.
//!
//! Counts and gauges only: no label carries a room, user or address.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Traffic direction label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirLabels {
    /// `in` (received) or `out` (sent).
    pub direction: &'static str,
}

/// Reason label (auth failures, ended sessions).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Short stable reason.
    pub reason: &'static str,
}

/// All media-node metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Rooms with at least one session.
    pub rooms: Gauge,
    /// Live sessions.
    pub peers: Gauge,
    /// UDP datagrams and ICE-TCP frames by direction.
    pub packets: Family<DirLabels, Counter>,
    /// UDP and ICE-TCP payload bytes by direction.
    pub bytes: Family<DirLabels, Counter>,
    /// Time from a frame's arrival to its hand-off to each subscriber.
    pub forward_latency: Histogram,
    /// Open ICE-TCP connections.
    pub tcp_connections: Gauge,
    /// Version of the tenant data key new recordings use (0 before it is loaded).
    pub tenant_key_version: Gauge,
    /// ICE-TCP connections closed because no session claimed what they sent.
    pub tcp_refused: Counter,
    /// Refused tokens by reason.
    pub auth_failures: Family<ReasonLabels, Counter>,
    /// Ended sessions by reason.
    pub sessions_ended: Family<ReasonLabels, Counter>,
    /// Recordings writing now.
    pub recordings_active: Gauge,
    /// Frames a recorder could not take in time (total).
    pub recording_frames_dropped: Gauge,
    /// Session log records written to the audit bucket.
    pub audit_shipped: Counter,
    /// Writes of session log records the audit bucket refused (retried).
    pub audit_failures: Counter,
    /// Session log records queued and not yet written.
    pub audit_pending: Gauge,
    /// Age of the oldest unwritten session log record.
    pub audit_lag: Gauge<f64, AtomicU64>,
    /// Session log records dropped because the queue was full.
    pub audit_dropped: Counter,
    recorders: Arc<std::sync::Mutex<Option<Arc<dyn RecorderGauges>>>>,
}

/// Gauges read when metrics are scraped, from whatever keeps them (the recorders), so this
/// module depends on nothing of the node.
pub trait RecorderGauges: Send + Sync {
    /// Recordings in progress.
    fn active(&self) -> usize;
    /// Frames dropped because a recorder fell behind, since start.
    fn dropped(&self) -> u64;
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sanctum_media");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            rooms: Gauge::default(),
            peers: Gauge::default(),
            packets: Family::default(),
            bytes: Family::default(),
            forward_latency: Histogram::new(exponential_buckets(0.000_01, 2.0, 18)),
            tcp_connections: Gauge::default(),
            tenant_key_version: Gauge::default(),
            tcp_refused: Counter::default(),
            auth_failures: Family::default(),
            sessions_ended: Family::default(),
            recordings_active: Gauge::default(),
            recording_frames_dropped: Gauge::default(),
            audit_shipped: Counter::default(),
            audit_failures: Counter::default(),
            audit_pending: Gauge::default(),
            audit_lag: Gauge::default(),
            audit_dropped: Counter::default(),
            recorders: Arc::default(),
        };
        registry.register(
            "audit_records_shipped",
            "Session log records written to the audit bucket",
            m.audit_shipped.clone(),
        );
        registry.register(
            "audit_ship_failures",
            "Writes of session log records the audit bucket refused (retried)",
            m.audit_failures.clone(),
        );
        registry.register(
            "audit_pending_records",
            "Session log records queued and not yet in the audit bucket",
            m.audit_pending.clone(),
        );
        registry.register(
            "audit_records_dropped",
            "Session log records dropped because the queue was full",
            m.audit_dropped.clone(),
        );
        registry.register(
            "audit_lag_seconds",
            "Age of the oldest session log record not yet in the audit bucket",
            m.audit_lag.clone(),
        );
        registry.register(
            "recordings_active",
            "Recordings writing now",
            m.recordings_active.clone(),
        );
        registry.register(
            "recording_frames_dropped",
            "Frames dropped because a recorder fell behind",
            m.recording_frames_dropped.clone(),
        );
        registry.register("rooms", "Rooms with at least one session", m.rooms.clone());
        registry.register("peers", "Live WebRTC sessions", m.peers.clone());
        registry.register(
            "packets",
            "UDP datagrams and ICE-TCP frames, by direction",
            m.packets.clone(),
        );
        registry.register(
            "bytes",
            "UDP and ICE-TCP payload bytes, by direction",
            m.bytes.clone(),
        );
        registry.register(
            "tcp_connections",
            "Open ICE-TCP connections",
            m.tcp_connections.clone(),
        );
        registry.register(
            "tenant_key_version",
            "Version of the tenant data key new recordings use",
            m.tenant_key_version.clone(),
        );
        registry.register(
            "tcp_refused",
            "ICE-TCP connections closed because no session claimed what they sent",
            m.tcp_refused.clone(),
        );
        registry.register(
            "forward_latency_seconds",
            "Time from a frame's arrival to its hand-off to a subscriber",
            m.forward_latency.clone(),
        );
        registry.register(
            "auth_failures",
            "Requests refused for their join token, by reason",
            m.auth_failures.clone(),
        );
        registry.register(
            "sessions_ended",
            "Sessions ended, by reason",
            m.sessions_ended.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            ..m
        }
    }
}

impl Metrics {
    /// Counts datagrams and bytes moved in one direction.
    pub fn traffic(&self, direction: &'static str, packets: u64, bytes: u64) {
        let labels = DirLabels { direction };
        self.packets.get_or_create(&labels).inc_by(packets);
        self.bytes.get_or_create(&labels).inc_by(bytes);
    }

    /// Records one forwarding delay.
    pub fn forwarded(&self, latency: Duration) {
        self.forward_latency.observe(latency.as_secs_f64());
    }

    /// Counts a refused token.
    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts an ended session.
    pub fn session_ended(&self, reason: &'static str) {
        self.sessions_ended
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Exposes the recorders' gauges (active recordings, frames dropped for a slow recorder).
    pub fn watch_recorders(&self, recorders: Arc<dyn RecorderGauges>) {
        *self.recorders.lock().unwrap_or_else(|e| e.into_inner()) = Some(recorders);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        if let Some(r) = self
            .recorders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            self.recordings_active.set(r.active() as i64);
            self.recording_frames_dropped.set(r.dropped() as i64);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
