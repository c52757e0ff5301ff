//! What the HTTP handlers (signaling and control) share: the SFU driver's handle, the keys
//! once loaded, revoked tokens, session limits, metrics, recordings (and those waiting for
//! their host), and whether the node is draining. The server composes it; handlers read it
//! and start recordings through it.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use sanctum_api::control::{RecordingReport, StartRecording};

use crate::keys::Keys;
use crate::media::MediaHandle;
use crate::metrics::Metrics;
use crate::placement::Placement;
use crate::recording::consent::Awaiting;
use crate::recording::{Recorders, StartError};
use crate::token::Revoked;
use crate::turn::TurnConfig;

/// Caps on concurrent sessions, so one token, one room or a flood of offers cannot take
/// the whole node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Sessions on this node.
    pub node: usize,
    /// Sessions in one room.
    pub room: usize,
    /// Sessions opened with one token (a publish and a subscribe, plus reconnects).
    pub token: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            node: 500,
            room: 50,
            token: 4,
        }
    }
}

/// The handlers' shared state.
#[derive(Clone)]
pub struct AppState {
    /// The SFU driver.
    pub media: MediaHandle,
    /// Set once the keys are loaded; signaling answers 503 before.
    pub keys: Arc<OnceLock<Keys>>,
    /// Tokens withdrawn before their expiry (their holder was removed from a room).
    pub revoked: Arc<Revoked>,
    /// Session caps.
    pub limits: Limits,
    /// Metrics.
    pub metrics: Metrics,
    /// Set on SIGTERM: no new sessions.
    pub draining: Arc<AtomicBool>,
    /// Recordings (control API).
    pub recorders: Recorders,
    /// Recordings asked for that wait for their room's host.
    pub consent: Arc<Awaiting>,
    /// How rooms find their node in a region of several (`None`: this node alone).
    pub placement: Option<Arc<Placement>>,
    /// The tenant's TURN service, whose credentials go out with answers (`None`: no TURN).
    pub turn: Option<Arc<TurnConfig>>,
}

impl AppState {
    /// Starts recording `id` under the tenant's current data key and has the SFU feed the
    /// room to it: the operator's start and a host's consent both begin a recording here.
    /// The report, and whether the recording is new.
    pub async fn start_recording(
        &self,
        id: &str,
        req: &StartRecording,
    ) -> Result<(RecordingReport, bool), StartError> {
        let key = self.keys.get().ok_or(StartError::NotReady)?.tenant_key();
        let started = self
            .recorders
            .start(id, req, key.key.clone(), key.version)?;
        self.media.record(&req.room).await;
        Ok(started)
    }
}
