//! Recording a room: frames → WebM ([`mux`]) → AES-256-GCM chunks ([`seal`]) → S3
//! multipart upload ([`upload`]), all in memory.
//!
//! Each recording runs on its own thread (libwebm is synchronous) fed by a bounded
//! channel from the SFU driver; a full channel drops frames rather than stall forwarding,
//! and counts them. A failure at any step aborts the multipart upload, so S3 never holds
//! a partial object; a crash leaves an incomplete upload that the operator aborts.

pub mod consent;
pub mod mux;
pub use sanctum_keywrap::seal;
pub mod upload;

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sanctum_api::control::{NodePhase, RecordingReport, StartRecording};
use sanctum_media_core::RecordedFrame;
use zeroize::Zeroizing;

use self::mux::Muxer;
use self::seal::Sealer;
use self::upload::{Target, Upload};

/// Frames buffered per recording before new ones are dropped (about a minute of a
/// 30 fps video track with 50 pps audio).
pub const QUEUE: usize = 4096;
/// Ciphertext gathered before it is handed to the uploader.
const HANDOFF: usize = 1024 * 1024;

enum Msg {
    Frame(RecordedFrame),
    Stop,
}

/// Room → (recording id, sender) of its active recordings.
type Routes = Arc<Mutex<HashMap<String, Vec<(String, SyncSender<Msg>)>>>>;

/// A recording's entry: its shared state and the way to feed or stop it.
struct Entry {
    report: Arc<Mutex<RecordingReport>>,
    tx: SyncSender<Msg>,
}

/// Why a recording could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A recording with this id exists for another room or object.
    #[error("recording {0} exists with other parameters")]
    Conflict(String),
    /// The tenant key is not loaded yet.
    #[error("the node has no tenant key yet")]
    NotReady,
}

/// What every recording needs from the node.
#[derive(Clone)]
pub struct RecorderConfig {
    /// Tenant name (header, data-key binding).
    pub tenant: String,
    /// S3 client for the tenant bucket.
    pub s3: aws_sdk_s3::Client,
    /// KMS key for SSE-KMS on the object, if the tenant uses AWS KMS.
    pub kms_key_id: Option<String>,
}

/// Recordings of this node, by id (the `Recording` uid).
#[derive(Clone)]
pub struct Recorders {
    config: RecorderConfig,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    /// Room → senders of its active recordings; read by the SFU driver.
    routes: Routes,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl Recorders {
    /// No recordings yet.
    pub fn new(config: RecorderConfig) -> Self {
        Recorders {
            config,
            entries: Arc::default(),
            routes: Arc::default(),
            dropped: Arc::default(),
        }
    }

    /// A recording's state.
    pub fn report(&self, id: &str) -> Option<RecordingReport> {
        let entries = lock(&self.entries);
        entries.get(id).map(|e| lock(&e.report).clone())
    }

    /// Recordings currently writing.
    pub fn active(&self) -> usize {
        lock(&self.entries)
            .values()
            .filter(|e| lock(&e.report).phase == NodePhase::Recording)
            .count()
    }

    /// Rooms with an active recording.
    pub fn rooms(&self) -> Vec<String> {
        lock(&self.routes).keys().cloned().collect()
    }

    /// Frames dropped because a recorder fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hands a frame to the recordings of its room (called by the SFU driver); false when
    /// no recording of the room is active any more.
    pub fn route(&self, frame: &RecordedFrame) -> bool {
        let mut routes = lock(&self.routes);
        let Some(senders) = routes.get_mut(&frame.room) else {
            return false;
        };
        senders.retain(|(_, tx)| match tx.try_send(Msg::Frame(frame.clone())) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
        if senders.is_empty() {
            routes.remove(&frame.room);
            return false;
        }
        true
    }

    /// Starts recording `req.room` as `id`; idempotent for the same id and parameters.
    /// Returns the report and whether it was created now.
    pub fn start(
        &self,
        id: &str,
        req: &StartRecording,
        tenant_key: Arc<Zeroizing<Vec<u8>>>,
        key_version: i32,
    ) -> Result<(RecordingReport, bool), StartError> {
        let mut entries = lock(&self.entries);
        if let Some(existing) = entries.get(id) {
            let report = lock(&existing.report).clone();
            if report.room != req.room || report.bucket != req.bucket || report.key != req.key {
                return Err(StartError::Conflict(id.to_string()));
            }
            return Ok((report, false));
        }
        let report = Arc::new(Mutex::new(RecordingReport::begun(
            NodePhase::Recording,
            req,
            key_version,
            jiff::Timestamp::now().to_string(),
        )));
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let job = Job {
            id: id.to_string(),
            tenant: self.config.tenant.clone(),
            tenant_key,
            key_version,
            target: Target {
                bucket: req.bucket.clone(),
                key: req.key.clone(),
                kms_key_id: self.config.kms_key_id.clone(),
            },
            s3: self.config.s3.clone(),
            report: report.clone(),
            routes: self.routes.clone(),
            room: req.room.clone(),
        };
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name(format!("rec-{}", &id[..id.len().min(8)]))
            .spawn(move || job.run(&runtime, rx))
            .map_err(|_| StartError::NotReady)?;
        lock(&self.routes)
            .entry(req.room.clone())
            .or_default()
            .push((id.to_string(), tx.clone()));
        entries.insert(
            id.to_string(),
            Entry {
                report: report.clone(),
                tx,
            },
        );
        let snapshot = lock(&report).clone();
        Ok((snapshot, true))
    }

    /// Asks a recording to stop and seal; its report moves to `finalizing`, then `sealed`.
    pub fn stop(&self, id: &str) -> Option<RecordingReport> {
        let entries = lock(&self.entries);
        let entry = entries.get(id)?;
        // The recorder leaves the route itself; a full queue still gets the stop through
        // because the sender blocks only this control request, briefly.
        let _ = entry.tx.send(Msg::Stop);
        let report = lock(&entry.report).clone();
        Some(report)
    }

    /// Stops every recording and waits (up to `timeout`) for them to seal (shutdown).
    pub fn stop_all(&self, timeout: Duration) {
        let ids: Vec<String> = lock(&self.entries).keys().cloned().collect();
        for id in &ids {
            self.stop(id);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline
            && lock(&self.entries).values().any(|e| {
                matches!(
                    lock(&e.report).phase,
                    NodePhase::Recording | NodePhase::Finalizing
                )
            })
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Job {
    id: String,
    tenant: String,
    tenant_key: Arc<Zeroizing<Vec<u8>>>,
    key_version: i32,
    target: Target,
    s3: aws_sdk_s3::Client,
    report: Arc<Mutex<RecordingReport>>,
    routes: Routes,
    room: String,
}

impl Job {
    fn run(self, runtime: &tokio::runtime::Handle, rx: Receiver<Msg>) {
        crate::session_log::recording("record-start", &self.id, &self.room);
        let upload = match runtime.block_on(Upload::start(self.s3.clone(), self.target.clone())) {
            Ok(u) => u,
            Err(e) => return self.fail(e.to_string()),
        };
        lock(&self.report).upload_id = Some(upload.id().to_string());
        let mut upload = Some(upload);
        let outcome = self.record(runtime, &rx, &mut upload);
        self.leave_route();
        match outcome {
            Ok(()) => {}
            Err(reason) => {
                if let Some(u) = upload.take()
                    && let Err(e) = runtime.block_on(u.abort())
                {
                    tracing::warn!(recording = %self.id, error = %e, "could not abort the upload; the bucket's lifecycle rule will");
                }
                self.fail(reason);
            }
        }
    }

    fn record(
        &self,
        runtime: &tokio::runtime::Handle,
        rx: &Receiver<Msg>,
        upload: &mut Option<Upload>,
    ) -> Result<(), String> {
        let mut out = Vec::with_capacity(2 * HANDOFF);
        let (mut sealer, _) = Sealer::start(
            &self.tenant_key,
            &self.tenant,
            &self.id,
            self.key_version,
            mux::CONTENT_TYPE,
            &mut out,
        )
        .map_err(|e| e.to_string())?;
        let mut muxer = Muxer::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Msg::Frame(frame)) => muxer.push(frame, Instant::now()),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => muxer.tick(Instant::now()),
            }
            .map_err(|e| e.to_string())?;
            sealer
                .push(&muxer.take_output(), &mut out)
                .map_err(|e| e.to_string())?;
            if out.len() >= HANDOFF {
                let u = upload.as_mut().ok_or("upload gone")?;
                runtime.block_on(u.write(&out)).map_err(|e| e.to_string())?;
                out.clear();
            }
            let mut r = lock(&self.report);
            r.frames = muxer.frames();
            r.skipped = muxer.skipped();
        }
        {
            let mut r = lock(&self.report);
            r.phase = NodePhase::Finalizing;
            r.ended_at = Some(jiff::Timestamp::now().to_string());
        }
        crate::session_log::recording("record-stop", &self.id, &self.room);
        self.leave_route();
        // Frames still queued were sent before the stop; they belong to the recording.
        while let Ok(Msg::Frame(frame)) = rx.try_recv() {
            muxer
                .push(frame, Instant::now())
                .map_err(|e| e.to_string())?;
        }
        let (frames, skipped) = (muxer.frames(), muxer.skipped());
        let tail = muxer.finish().map_err(|e| e.to_string())?;
        sealer.push(&tail, &mut out).map_err(|e| e.to_string())?;
        sealer.finish(&mut out).map_err(|e| e.to_string())?;
        let mut u = upload.take().ok_or("upload gone")?;
        if let Err(e) = runtime.block_on(u.write(&out)) {
            *upload = Some(u);
            return Err(e.to_string());
        }
        let stored = runtime.block_on(u.complete()).map_err(|e| e.to_string())?;
        let mut r = lock(&self.report);
        r.phase = NodePhase::Sealed;
        r.frames = frames;
        r.skipped = skipped;
        r.upload_id = None;
        r.version_id = stored.version_id;
        r.size_bytes = Some(stored.size);
        r.sha256 = Some(stored.sha256);
        tracing::info!(recording = %self.id, frames, skipped, bytes = stored.size, "recording sealed");
        Ok(())
    }

    fn leave_route(&self) {
        let mut routes = lock(&self.routes);
        if let Some(senders) = routes.get_mut(&self.room) {
            senders.retain(|(id, _)| id != &self.id);
            if senders.is_empty() {
                routes.remove(&self.room);
            }
        }
    }

    fn fail(&self, reason: String) {
        self.leave_route();
        tracing::warn!(recording = %self.id, reason = %reason, "recording failed");
        let mut r = lock(&self.report);
        r.phase = NodePhase::Failed;
        r.upload_id = None;
        r.reason = Some(reason);
        if r.ended_at.is_none() {
            r.ended_at = Some(jiff::Timestamp::now().to_string());
        }
    }
}

impl crate::metrics::RecorderGauges for Recorders {
    fn active(&self) -> usize {
        Recorders::active(self)
    }

    fn dropped(&self) -> u64 {
        Recorders::dropped(self)
    }
}
