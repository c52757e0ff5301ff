//! A WebRTC peer on str0m that publishes (WHIP) or subscribes (WHEP) to a media node,
//! over real UDP (or ICE-TCP) with DTLS-SRTP, for tests and benchmarks.
//!
//! A publisher sends numbered, timestamped VP8 frames and Opus packets; a subscriber
//! counts what arrives, which frame numbers, and how long each took from the publisher's
//! write (both ends share this process's clock).

#![forbid(unsafe_code)]

mod link;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sanctum_media_core::str0m::change::SdpAnswer;
use sanctum_media_core::str0m::format::Codec;
use sanctum_media_core::str0m::media::{Direction, MediaKind, MediaTime, Mid};
use sanctum_media_core::str0m::net::Receive;
use sanctum_media_core::str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;

use link::{Link, tcp_candidate};

/// Marker at the start of every frame this client sends, after the VP8 byte.
const MAGIC: &[u8; 4] = b"SNCT";

/// Publish or subscribe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// WHIP.
    Publish,
    /// WHEP.
    Subscribe,
}

/// How to reach the node and what to ask for.
#[derive(Clone, Debug)]
pub struct Options {
    /// Signaling base URL, e.g. `https://media.example:8443`.
    pub base: String,
    /// Room.
    pub room: String,
    /// Join token.
    pub token: String,
    /// Subscriber's simulcast layer preference.
    pub layer: Option<String>,
    /// Local address to bind the UDP socket to.
    pub local_ip: IpAddr,
    /// Publisher: video frames per second (audio follows at 50 packets/s).
    pub fps: u32,
    /// Publisher: bytes per video frame (at least 24).
    pub frame_bytes: usize,
    /// Subscriber: video m-lines, one per publisher it wants to see (at least 1).
    pub video_slots: usize,
    /// How media travels.
    pub transport: Transport,
}

/// The transport of a session's media.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP from a socket bound to `local_ip`; the offer carries its host candidate.
    Udp,
    /// ICE-TCP (RFC 6544): the offer carries no candidate; after the answer the client
    /// connects to the node's passive TCP candidate and uses that connection alone.
    Tcp,
}

/// What a session saw.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// ICE and DTLS are up.
    pub connected: bool,
    /// Video frames written (publisher).
    pub video_sent: u64,
    /// Audio packets written (publisher).
    pub audio_sent: u64,
    /// Video frames received (subscriber).
    pub video_received: u64,
    /// Audio packets received (subscriber).
    pub audio_received: u64,
    /// Media payload bytes received.
    pub bytes_received: u64,
    /// Frame numbers of received video whose payload checked out.
    pub frames: BTreeSet<u32>,
    /// Received frames whose payload did not match what the publisher wrote.
    pub corrupt: u64,
    /// Publisher-write to subscriber-receive delays.
    pub latencies: Vec<Duration>,
    /// Keyframe requests received (publisher).
    pub keyframe_requests: u64,
    /// The node ended the session (DTLS close or ICE loss), not us.
    pub closed_by_node: bool,
    /// Video frames received per m-line (subscriber), by mid.
    pub video_by_mid: std::collections::BTreeMap<String, u64>,
    /// The node's media address, from the first datagram it sent.
    pub remote: Option<SocketAddr>,
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node answered with an error status.
    #[error("the node refused with {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
        /// `WWW-Authenticate` header, if any.
        challenge: Option<String>,
    },
    /// HTTP failed.
    #[error("signaling request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// Local socket or WebRTC setup failed.
    #[error("{0}")]
    Local(String),
}

/// A running session.
pub struct Session {
    /// Absolute URL of the session resource.
    pub resource: String,
    /// Its entity tag.
    pub etag: String,
    /// The 201 response's `Link` header values (ICE servers, RFC 9725 §4.6).
    pub links: Vec<String>,
    /// Local UDP address (over ICE-TCP: the connection's local address).
    pub local_addr: SocketAddr,
    http: reqwest::Client,
    token: String,
    stats: Arc<Mutex<Stats>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Starts a session: offer, answer, then a task that moves media until stopped.
pub async fn connect(
    http: &reqwest::Client,
    kind: Kind,
    opts: &Options,
) -> Result<Session, ClientError> {
    let local = |e: std::io::Error| ClientError::Local(e.to_string());
    let now = Instant::now();
    let mut rtc = Rtc::builder().build(now);
    let udp = match opts.transport {
        Transport::Udp => {
            let socket = UdpSocket::bind(SocketAddr::new(opts.local_ip, 0))
                .await
                .map_err(local)?;
            let local_addr = socket.local_addr().map_err(local)?;
            let candidate = Candidate::host(local_addr, "udp")
                .map_err(|e| ClientError::Local(e.to_string()))?;
            rtc.add_local_candidate(candidate);
            Some((socket, local_addr))
        }
        Transport::Tcp => None,
    };
    let dir = match kind {
        Kind::Publish => Direction::SendOnly,
        Kind::Subscribe => Direction::RecvOnly,
    };
    let mut api = rtc.sdp_api();
    let audio = api.add_media(MediaKind::Audio, dir, None, None, None);
    let slots = match kind {
        Kind::Publish => 1,
        Kind::Subscribe => opts.video_slots.max(1),
    };
    let videos: Vec<Mid> = (0..slots)
        .map(|_| api.add_media(MediaKind::Video, dir, None, None, None))
        .collect();
    let video = videos[0];
    let (offer, pending) = api
        .apply()
        .ok_or_else(|| ClientError::Local("no offer".into()))?;

    let path = match kind {
        Kind::Publish => "whip",
        Kind::Subscribe => "whep",
    };
    let mut url = format!("{}/{path}/{}", opts.base.trim_end_matches('/'), opts.room);
    if let Some(layer) = &opts.layer {
        url.push_str(&format!("?layer={layer}"));
    }
    let resp = http
        .post(&url)
        .bearer_auth(&opts.token)
        .header("content-type", "application/sdp")
        .body(offer.to_sdp_string())
        .send()
        .await?;
    if resp.status().as_u16() != 201 {
        return Err(refused(resp).await);
    }
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let location = header("location").ok_or_else(|| ClientError::Local("no Location".into()))?;
    let etag = header("etag").unwrap_or_default();
    let links: Vec<String> = resp
        .headers()
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let resource = if location.starts_with("http") {
        location
    } else {
        format!("{}{location}", opts.base.trim_end_matches('/'))
    };
    let answer_sdp = resp.text().await?;
    let answer =
        SdpAnswer::from_sdp_string(&answer_sdp).map_err(|e| ClientError::Local(e.to_string()))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| ClientError::Local(e.to_string()))?;
    let (link, local_addr) = match udp {
        Some((socket, local_addr)) => (Link::Udp(socket), local_addr),
        None => {
            let remote = tcp_candidate(&answer_sdp)
                .ok_or_else(|| ClientError::Local("the answer has no ICE-TCP candidate".into()))?;
            let stream = TcpStream::connect(remote).await.map_err(local)?;
            let _ = stream.set_nodelay(true);
            let local_addr = stream.local_addr().map_err(local)?;
            let candidate = Candidate::builder()
                .tcp()
                .host(local_addr)
                .tcptype(sanctum_media_core::str0m::net::TcpType::Active)
                .build()
                .map_err(|e| ClientError::Local(e.to_string()))?;
            rtc.add_local_candidate(candidate);
            (Link::tcp(stream), local_addr)
        }
    };

    let stats = Arc::new(Mutex::new(Stats::default()));
    let (stop, stop_rx) = watch::channel(false);
    let peer = Peer {
        rtc,
        link,
        local_addr,
        kind,
        audio,
        video,
        videos,
        fps: opts.fps.max(1),
        frame_bytes: opts.frame_bytes.max(24),
        stats: stats.clone(),
    };
    let task = tokio::spawn(peer.run(stop_rx));
    Ok(Session {
        resource,
        etag,
        links,
        local_addr,
        http: http.clone(),
        token: opts.token.clone(),
        stats,
        stop,
        task,
    })
}

async fn refused(resp: reqwest::Response) -> ClientError {
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.text().await.unwrap_or_default();
    ClientError::Refused {
        status,
        body,
        challenge,
    }
}

impl Session {
    /// A snapshot of what the session saw so far.
    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether the media task is still running.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// `GET` on the session resource: the node's view of the session as JSON text.
    pub async fn state(&self) -> Result<(u16, String), ClientError> {
        let resp = self
            .http
            .get(&self.resource)
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok((resp.status().as_u16(), resp.text().await?))
    }

    /// Leaves: `DELETE` on the resource, then stops the media task. Returns the status.
    pub async fn close(self) -> Result<(u16, Stats), ClientError> {
        let resp = self
            .http
            .delete(&self.resource)
            .bearer_auth(&self.token)
            .send()
            .await?;
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let stats = self.stats.lock().map(|s| s.clone()).unwrap_or_default();
        Ok((resp.status().as_u16(), stats))
    }

    /// Stops the media task without telling the node (a peer that vanished).
    pub async fn abandon(self) -> Stats {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

struct Peer {
    rtc: Rtc,
    link: Link,
    local_addr: SocketAddr,
    kind: Kind,
    audio: Mid,
    video: Mid,
    videos: Vec<Mid>,
    fps: u32,
    frame_bytes: usize,
    stats: Arc<Mutex<Stats>>,
}

impl Peer {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut buf = Vec::with_capacity(2048);
        let started = Instant::now();
        let frame_gap = Duration::from_secs(1) / self.fps;
        let audio_gap = Duration::from_millis(20);
        let (mut next_frame, mut next_audio) = (started, started);
        let (mut frame_no, mut audio_no) = (0u32, 0u32);
        loop {
            let timeout = match self.drain() {
                Some(t) => t,
                None => return,
            };
            let mut wake = timeout;
            if self.kind == Kind::Publish && self.connected() {
                wake = wake.min(next_frame).min(next_audio);
            }
            tokio::select! {
                _ = stop.changed() => return,
                r = self.link.recv(&mut buf) => {
                    let Some((proto, source)) = r else { return };
                    if let Ok(mut s) = self.stats.lock() {
                        s.remote.get_or_insert(source);
                    }
                    let Ok(contents) = buf.as_slice().try_into() else { continue };
                    let input = Input::Receive(Instant::now(), Receive {
                        proto,
                        source,
                        destination: self.local_addr,
                        contents,
                    });
                    if self.rtc.handle_input(input).is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if self.rtc.handle_input(Input::Timeout(now)).is_err() {
                        return;
                    }
                    if self.kind == Kind::Publish && self.connected() {
                        if now >= next_frame {
                            self.write_video(frame_no, now.duration_since(started));
                            frame_no += 1;
                            next_frame += frame_gap;
                        }
                        if now >= next_audio {
                            self.write_audio(audio_no, now.duration_since(started));
                            audio_no += 1;
                            next_audio += audio_gap;
                        }
                    }
                }
            }
        }
    }

    fn connected(&self) -> bool {
        self.stats.lock().map(|s| s.connected).unwrap_or(false)
    }

    /// Sends what str0m queued and handles its events; `None` when the session is over.
    fn drain(&mut self) -> Option<Instant> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Some(t),
                Ok(Output::Transmit(t)) => {
                    self.link.send(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => {
                    if !self.on_event(e) {
                        return None;
                    }
                }
                Err(_) => {
                    self.mark_closed();
                    return None;
                }
            }
            if !self.rtc.is_alive() {
                self.mark_closed();
                return None;
            }
        }
    }

    fn mark_closed(&self) {
        if let Ok(mut s) = self.stats.lock() {
            s.closed_by_node = true;
        }
    }

    fn on_event(&mut self, e: Event) -> bool {
        let Ok(mut s) = self.stats.lock() else {
            return false;
        };
        match e {
            Event::Connected => s.connected = true,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) | Event::Closed => {
                s.closed_by_node = true;
                return false;
            }
            Event::KeyframeRequest(_) => s.keyframe_requests += 1,
            Event::MediaData(d) => {
                s.bytes_received += d.data.len() as u64;
                if self.videos.contains(&d.mid) {
                    s.video_received += 1;
                    *s.video_by_mid.entry(d.mid.to_string()).or_default() += 1;
                    match parse_frame(&d.data) {
                        Some((n, sent)) => {
                            s.frames.insert(n);
                            let now = Instant::now().duration_since(epoch());
                            s.latencies.push(now.saturating_sub(sent));
                        }
                        None => s.corrupt += 1,
                    }
                } else if d.mid == self.audio {
                    s.audio_received += 1;
                }
            }
            _ => {}
        }
        true
    }

    fn pt(&self, codec: Codec) -> Option<sanctum_media_core::str0m::media::Pt> {
        self.rtc
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
    }

    fn write_video(&mut self, n: u32, elapsed: Duration) {
        let Some(pt) = self.pt(Codec::Vp8) else {
            return;
        };
        let frame = make_frame(n, self.frame_bytes);
        let time = MediaTime::from_micros(elapsed.as_micros() as u64);
        if let Some(w) = self.rtc.writer(self.video)
            && w.write(pt, Instant::now(), time, frame).is_ok()
            && let Ok(mut s) = self.stats.lock()
        {
            s.video_sent += 1;
        }
    }

    fn write_audio(&mut self, n: u32, elapsed: Duration) {
        let Some(pt) = self.pt(Codec::Opus) else {
            return;
        };
        let mut packet = vec![0xFC];
        packet.extend_from_slice(&n.to_be_bytes());
        let time = MediaTime::from_micros(elapsed.as_micros() as u64);
        if let Some(w) = self.rtc.writer(self.audio)
            && w.write(pt, Instant::now(), time, packet).is_ok()
            && let Ok(mut s) = self.stats.lock()
        {
            s.audio_sent += 1;
        }
    }
}

/// A VP8 "frame": keyframe bit clear (byte 0), marker, number, send time, and filler that
/// depends on the number, so a corrupted or misrouted frame is detected.
pub fn make_frame(n: u32, len: usize) -> Vec<u8> {
    let sent = Instant::now().duration_since(epoch()).as_nanos() as u64;
    let mut f = Vec::with_capacity(len);
    f.push(0x10);
    f.extend_from_slice(MAGIC);
    f.extend_from_slice(&n.to_be_bytes());
    f.extend_from_slice(&sent.to_be_bytes());
    let mut i = 0u32;
    while f.len() < len {
        f.push((n.wrapping_mul(31).wrapping_add(i) & 0xff) as u8);
        i += 1;
    }
    f
}

/// The frame number and send time of a frame made by [`make_frame`], if it is intact.
pub fn parse_frame(f: &[u8]) -> Option<(u32, Duration)> {
    if f.len() < 17 || f[0] != 0x10 || &f[1..5] != MAGIC {
        return None;
    }
    let n = u32::from_be_bytes(f[5..9].try_into().ok()?);
    let sent = u64::from_be_bytes(f[9..17].try_into().ok()?);
    let intact = f[17..]
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (n.wrapping_mul(31).wrapping_add(i as u32) & 0xff) as u8);
    intact.then_some((n, Duration::from_nanos(sent)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_seen() {
        let f = make_frame(7, 300);
        assert_eq!(f.len(), 300);
        assert_eq!(parse_frame(&f).map(|(n, _)| n), Some(7));
        let mut bad = f.clone();
        bad[200] ^= 1;
        assert_eq!(parse_frame(&bad), None);
    }
}
