//! The tokio driver of the SFU: one UDP socket (and, for ICE-TCP, the frames of
//! [`crate::tcp`]'s connections), one task that owns the [`Sfu`], and a command channel the
//! signaling handlers use.
//!
//! Also the session registry (resource id → session) and the session log. The log names
//! sessions by their random resource id and users by their opaque id; no SDP, address,
//! token or key ever reaches it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sanctum_media_core::str0m::Candidate;
use sanctum_media_core::str0m::net::Protocol;
use sanctum_media_core::{AcceptError, EndReason, PeerId, PeerInfo, Sfu, SfuConfig, SfuEvent};
use tokio::io::Interest;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::recording::Recorders;
use crate::session_log;
use crate::tcp::{TcpEvent, TcpLinks};

/// How long an ended session's resource still answers with its end reason.
const ENDED_RETENTION: Duration = Duration::from_secs(600);
/// Datagrams read per wake-up before the SFU is polled.
const RECV_BATCH: usize = 64;

/// A session as the signaling layer sees it.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    /// The SFU's id.
    pub peer: PeerId,
    /// Who and where.
    pub info: PeerInfo,
    /// Entity tag of the ICE session (RFC 9725 §4.3.1).
    pub etag: String,
    /// When and why it ended, if it has.
    pub ended: Option<(EndReason, Instant)>,
    /// The token that opened it.
    pub token: TokenRef,
}

/// The token a session was opened with: enough to withdraw it, never the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRef {
    /// The token's `jti`.
    pub jti: String,
    /// Its expiry (Unix seconds).
    pub exp: u64,
}

/// Sessions by resource id; shared by the driver and the signaling handlers.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<SessionMap>,
}

#[derive(Default)]
struct SessionMap {
    by_resource: HashMap<String, SessionRecord>,
    by_peer: HashMap<PeerId, String>,
}

impl Sessions {
    /// The session behind a resource id.
    pub fn get(&self, resource: &str) -> Option<SessionRecord> {
        self.lock().by_resource.get(resource).cloned()
    }

    /// Sessions not yet ended.
    pub fn live(&self) -> usize {
        self.count(|_| true)
    }

    /// Live sessions in `room`.
    pub fn in_room(&self, room: &str) -> usize {
        self.count(|s| s.info.room == room)
    }

    /// Live sessions opened with the token `jti`.
    pub fn with_token(&self, jti: &str) -> usize {
        self.count(|s| s.token.jti == jti)
    }

    fn count(&self, which: impl Fn(&SessionRecord) -> bool) -> usize {
        self.lock()
            .by_resource
            .values()
            .filter(|s| s.ended.is_none() && which(s))
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionMap> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than refusing all signaling, so recover the data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, resource: String, record: SessionRecord) {
        let mut map = self.lock();
        let now = Instant::now();
        map.by_resource.retain(|_, s| {
            s.ended
                .is_none_or(|(_, at)| now.duration_since(at) < ENDED_RETENTION)
        });
        map.by_peer.insert(record.peer, resource.clone());
        map.by_resource.insert(resource, record);
    }

    fn ended(&self, peer: PeerId, reason: EndReason) -> Option<(String, SessionRecord)> {
        let mut map = self.lock();
        let resource = map.by_peer.remove(&peer)?;
        let record = map.by_resource.get_mut(&resource)?;
        record.ended = Some((reason, Instant::now()));
        Some((resource, record.clone()))
    }
}

/// Why the driver could not take a command.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The offer was refused.
    #[error(transparent)]
    Offer(#[from] AcceptError),
    /// The driver stopped (shutdown).
    #[error("the media engine is not running")]
    Stopped,
}

enum Command {
    Accept {
        info: PeerInfo,
        token: TokenRef,
        offer: String,
        reply: oneshot::Sender<Result<(String, SessionRecord, String), AcceptError>>,
    },
    Candidates {
        peer: PeerId,
        candidates: Vec<Candidate>,
    },
    Touch {
        peer: PeerId,
    },
    End {
        peer: PeerId,
        reason: EndReason,
        reply: oneshot::Sender<()>,
    },
    EndAll {
        reason: EndReason,
        reply: oneshot::Sender<()>,
    },
    HasPublisher {
        room: String,
        reply: oneshot::Sender<bool>,
    },
    Record {
        room: String,
    },
}

/// The signaling side's handle on the driver.
#[derive(Clone)]
pub struct MediaHandle {
    tx: mpsc::Sender<Command>,
    /// The session registry.
    pub sessions: Arc<Sessions>,
}

impl MediaHandle {
    /// Negotiates a new session; returns its resource id, entity tag and SDP answer.
    pub async fn accept(
        &self,
        info: PeerInfo,
        token: TokenRef,
        offer: String,
    ) -> Result<(String, SessionRecord, String), MediaError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Accept {
                info,
                token,
                offer,
                reply,
            })
            .await
            .map_err(|_| MediaError::Stopped)?;
        Ok(rx.await.map_err(|_| MediaError::Stopped)??)
    }

    /// Adds trickled candidates to a session.
    pub async fn add_candidates(&self, peer: PeerId, candidates: Vec<Candidate>) {
        let _ = self.tx.send(Command::Candidates { peer, candidates }).await;
    }

    /// Counts a signaling request as activity.
    pub async fn touch(&self, peer: PeerId) {
        let _ = self.tx.send(Command::Touch { peer }).await;
    }

    /// Ends a session; returns once the registry shows it ended.
    pub async fn end(&self, peer: PeerId, reason: EndReason) {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::End {
                peer,
                reason,
                reply,
            })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    /// Whether a publisher is in `room` on this node.
    pub async fn has_publisher(&self, room: &str) -> bool {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::HasPublisher {
            room: room.to_string(),
            reply,
        };
        self.tx.send(cmd).await.is_ok() && rx.await.unwrap_or(false)
    }

    /// Starts copying `room`'s frames to its recorders.
    pub async fn record(&self, room: &str) {
        let _ = self
            .tx
            .send(Command::Record {
                room: room.to_string(),
            })
            .await;
    }

    /// Ends every session and waits until the driver has sent their goodbyes.
    pub async fn end_all(&self, reason: EndReason) {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::EndAll { reason, reply })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

/// Lowercase hex of `n` random bytes (resource ids, entity tags).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The media transports a node listens on and the addresses it offers for them.
pub struct MediaSockets {
    /// The UDP socket.
    pub udp: UdpSocket,
    /// Its ICE host candidate address.
    pub advertised: SocketAddr,
    /// The ICE-TCP listener and its passive candidate address, when enabled.
    pub tcp: Option<(TcpListener, SocketAddr)>,
}

/// Starts the driver on `sockets`.
pub fn spawn(
    sockets: MediaSockets,
    idle_timeout: Duration,
    max_session: Duration,
    metrics: Metrics,
    recorders: Recorders,
) -> (MediaHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(256);
    let sessions = Arc::new(Sessions::default());
    let (tcp_tx, tcp_rx) = mpsc::channel(1024);
    let tcp_advertised = sockets.tcp.as_ref().map(|(_, addr)| *addr);
    let sfu = Sfu::new(SfuConfig {
        idle_timeout,
        max_session,
        candidates: vec![sockets.advertised],
        tcp_candidates: tcp_advertised.into_iter().collect(),
    });
    let listener = sockets
        .tcp
        .map(|(listener, _)| tokio::spawn(crate::tcp::serve(listener, tcp_tx)));
    let driver = Driver {
        socket: sockets.udp,
        advertised: sockets.advertised,
        tcp_advertised,
        tcp_events: tcp_rx,
        tcp: TcpLinks::default(),
        sfu,
        rx,
        sessions: sessions.clone(),
        metrics,
        recorders,
        queued: Vec::new(),
    };
    let task = tokio::spawn(async move {
        driver.run().await;
        if let Some(listener) = listener {
            listener.abort();
        }
    });
    (MediaHandle { tx, sessions }, task)
}

struct Driver {
    socket: UdpSocket,
    advertised: SocketAddr,
    /// The ICE-TCP candidate address (`None`: no ICE-TCP).
    tcp_advertised: Option<SocketAddr>,
    tcp_events: mpsc::Receiver<TcpEvent>,
    tcp: TcpLinks,
    sfu: Sfu,
    rx: mpsc::Receiver<Command>,
    sessions: Arc<Sessions>,
    metrics: Metrics,
    recorders: Recorders,
    /// The datagrams of one turn; kept between turns so the hot path does not allocate it.
    queued: Vec<(Vec<u8>, SocketAddr)>,
}

impl Driver {
    async fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            let deadline = self
                .sfu
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                ready = self.socket.readable() => {
                    if ready.is_ok() {
                        self.receive(&mut buf);
                    }
                }
                Some(event) = self.tcp_events.recv(), if self.tcp_advertised.is_some() => {
                    self.receive_tcp(event);
                }
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => {
                        self.sfu.end_all(Instant::now(), EndReason::Shutdown);
                        self.flush().await;
                        return;
                    }
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.sfu.handle_timeout(Instant::now());
                }
            }
            self.flush().await;
        }
    }

    fn receive(&mut self, buf: &mut [u8]) {
        let (mut packets, mut bytes) = (0u64, 0u64);
        for _ in 0..RECV_BATCH {
            match self.socket.try_recv_from(buf) {
                Ok((n, source)) => {
                    packets += 1;
                    bytes += n as u64;
                    let now = Instant::now();
                    self.sfu
                        .handle_receive(now, Protocol::Udp, source, self.advertised, &buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(error = %e, "media socket receive failed");
                    break;
                }
            }
        }
        self.metrics.traffic("in", packets, bytes);
    }

    /// Takes one connection event and whatever else is queued, up to a batch.
    fn receive_tcp(&mut self, first: TcpEvent) {
        let Some(destination) = self.tcp_advertised else {
            return;
        };
        let (mut packets, mut bytes) = (0u64, 0u64);
        let mut next = Some(first);
        for _ in 0..RECV_BATCH {
            let Some(event) = next.take().or_else(|| self.tcp_events.try_recv().ok()) else {
                break;
            };
            if let Some((source, data)) = self.tcp.event(event) {
                packets += 1;
                bytes += data.len() as u64;
                let claimed = self.sfu.handle_receive(
                    Instant::now(),
                    Protocol::Tcp,
                    source,
                    destination,
                    &data,
                );
                if !self.tcp.receive_claimed(source, claimed) {
                    self.metrics.tcp_refused.inc();
                }
            }
        }
        self.metrics.tcp_connections.set(self.tcp.len() as i64);
        self.metrics.traffic("in", packets, bytes);
    }

    fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Accept {
                info,
                token,
                offer,
                reply,
            } => {
                let result = self
                    .sfu
                    .accept(now, info.clone(), &offer)
                    .map(|(peer, answer)| {
                        // Registered before this turn's events are logged, so they find it.
                        let resource = random_hex(16);
                        let record = SessionRecord {
                            peer,
                            info,
                            etag: format!("\"{}\"", random_hex(8)),
                            ended: None,
                            token,
                        };
                        self.sessions.insert(resource.clone(), record.clone());
                        (resource, record, answer)
                    });
                if let Err(Ok((_, record, _))) = reply.send(result) {
                    // The requester gave up (client went away): do not keep the session.
                    self.sfu.end(now, record.peer, EndReason::ClientLeft);
                }
            }
            Command::Candidates { peer, candidates } => {
                for c in candidates {
                    self.sfu.add_remote_candidate(now, peer, c);
                }
            }
            Command::Touch { peer } => self.sfu.touch(now, peer),
            Command::End {
                peer,
                reason,
                reply,
            } => {
                self.sfu.end(now, peer, reason);
                self.report();
                let _ = reply.send(());
            }
            Command::HasPublisher { room, reply } => {
                let _ = reply.send(self.sfu.has_publisher(&room));
            }
            Command::Record { room } => self.sfu.set_recording(now, &room, true),
            Command::EndAll { reason, reply } => {
                self.sfu.end_all(now, reason);
                // Replied to after the flush of this turn sends the goodbyes.
                let _ = reply.send(());
            }
        }
    }

    /// Sends what the SFU queued (in batches, see [`crate::udp`]), then reports its events
    /// and gauges.
    async fn flush(&mut self) {
        let mut queued = std::mem::take(&mut self.queued);
        let (mut packets, mut bytes) = (0u64, 0u64);
        while let Some(t) = self.sfu.poll_transmit() {
            if t.proto == Protocol::Tcp {
                let len = t.contents.len() as u64;
                if self.tcp.send(t.destination, Vec::from(t.contents)) {
                    packets += 1;
                    bytes += len;
                }
            } else {
                queued.push((Vec::from(t.contents), t.destination));
            }
        }
        let mut next = 0;
        while next < queued.len() {
            let rest = &queued[next..];
            match self.socket.try_io(Interest::WRITABLE, || {
                crate::udp::send_batch(&self.socket, rest)
            }) {
                Ok(sent) => {
                    packets += sent as u64;
                    bytes += rest[..sent]
                        .iter()
                        .map(|(d, _)| d.len() as u64)
                        .sum::<u64>();
                    next += sent;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.socket.writable().await {
                        tracing::debug!(error = %e, dropped = queued.len() - next, "media socket unusable; datagrams dropped");
                        break;
                    }
                }
                Err(e) => {
                    // This datagram cannot be sent (e.g. its address is unreachable).
                    tracing::debug!(error = %e, "media socket send failed");
                    next += 1;
                }
            }
        }
        queued.clear();
        self.queued = queued;
        self.metrics.traffic("out", packets, bytes);
        self.report();
    }

    /// Logs the SFU's events and updates latency and gauge metrics.
    fn report(&mut self) {
        let mut unrecorded: Vec<String> = Vec::new();
        while let Some(frame) = self.sfu.poll_recorded() {
            if !self.recorders.route(&frame) && !unrecorded.contains(&frame.room) {
                unrecorded.push(frame.room);
            }
        }
        for room in unrecorded {
            // Its recordings ended: stop copying the room's frames.
            self.sfu.set_recording(Instant::now(), &room, false);
        }
        for latency in self.sfu.drain_latencies() {
            self.metrics.forwarded(latency);
        }
        while let Some(event) = self.sfu.poll_event() {
            self.log(event);
        }
        self.metrics.rooms.set(self.sfu.room_count() as i64);
        self.metrics.peers.set(self.sfu.peer_count() as i64);
    }

    fn log(&self, event: SfuEvent) {
        let record = |peer: PeerId| {
            let map = self.sessions.lock();
            let resource = map.by_peer.get(&peer).cloned();
            let info = resource
                .as_ref()
                .and_then(|r| map.by_resource.get(r))
                .map(|s| s.info.clone());
            resource.zip(info)
        };
        match event {
            SfuEvent::Connected(peer) => {
                if let Some((session, info)) = record(peer) {
                    session_log::session("join", &session, &info, None);
                }
            }
            SfuEvent::Published { peer, kind } => {
                if let Some((session, info)) = record(peer) {
                    session_log::session("publish", &session, &info, Some(kind));
                }
            }
            SfuEvent::Unpublished { peer, kind } => {
                if let Some((session, info)) = record(peer) {
                    session_log::session("unpublish", &session, &info, Some(kind));
                }
            }
            SfuEvent::Subscribed { peer, kind, .. } => {
                if let Some((session, info)) = record(peer) {
                    session_log::session("subscribe", &session, &info, Some(kind));
                }
            }
            SfuEvent::Ended { peer, reason, .. } => {
                self.metrics.session_ended(reason.as_str());
                if let Some((session, record)) = self.sessions.ended(peer, reason) {
                    session_log::session("leave", &session, &record.info, Some(reason.as_str()));
                }
            }
        }
    }
}
