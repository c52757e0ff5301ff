//! Rooms of peers and the forwarding between them.
//!
//! Publishers own their tracks; a subscriber's m-line (slot) carries one track of the same
//! kind from its room, picked in publishing order, and is re-bound when that track's
//! publisher leaves. Keyframe requests travel from subscriber to publisher, throttled.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{KeyframeRequest, KeyframeRequestKind, MediaData, MediaKind, Mid, Rid, Rids};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::peer::{Direction, EndReason, Peer, PeerId, PeerInfo, Slot, Track, TrackId};

mod accept;
mod forward;

use forward::kind_name;

/// Limits the SFU enforces on every session.
#[derive(Clone, Debug)]
pub struct SfuConfig {
    /// A session with no media and no signaling this long is ended.
    pub idle_timeout: Duration,
    /// No session lasts longer than this.
    pub max_session: Duration,
    /// Addresses the media socket is reachable at, offered as ICE host candidates.
    pub candidates: Vec<SocketAddr>,
    /// Addresses a TCP listener is reachable at, offered as passive ICE-TCP host candidates
    /// (RFC 6544) for clients whose networks refuse UDP.
    pub tcp_candidates: Vec<SocketAddr>,
}

/// Something the driver should log, count or tell a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SfuEvent {
    /// ICE and DTLS completed; media can flow.
    Connected(PeerId),
    /// A publisher's track arrived in its room.
    Published {
        /// The publisher.
        peer: PeerId,
        /// `audio` or `video`.
        kind: &'static str,
    },
    /// A subscriber's m-line now carries a publisher's track.
    Subscribed {
        /// The subscriber.
        peer: PeerId,
        /// The publisher whose track it receives.
        from: PeerId,
        /// `audio` or `video`.
        kind: &'static str,
    },
    /// A publisher's track left its room.
    Unpublished {
        /// The publisher.
        peer: PeerId,
        /// `audio` or `video`.
        kind: &'static str,
    },
    /// The session is over and forgotten.
    Ended {
        /// The session.
        peer: PeerId,
        /// The room it was in.
        room: String,
        /// Why it ended.
        reason: EndReason,
    },
}

/// One depacketized frame of a room being recorded, for the recorder.
#[derive(Clone, Debug)]
pub struct RecordedFrame {
    /// The room.
    pub room: String,
    /// The publisher's track (stable for the track's life).
    pub track: u64,
    /// Audio or video.
    pub kind: MediaKind,
    /// Codec of this frame.
    pub codec: Codec,
    /// Channels (audio only).
    pub channels: Option<u8>,
    /// RTP time in ticks of `clock_rate`.
    pub ticks: u64,
    /// Ticks per second.
    pub clock_rate: u32,
    /// When its first packet arrived.
    pub arrival: Instant,
    /// Whether a decoder can start here.
    pub keyframe: bool,
    /// The frame (shared with the subscribers' copies).
    pub data: Arc<[u8]>,
}

/// Why an offer was refused.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The body is not SDP str0m can parse.
    #[error("the offer is not valid SDP: {0}")]
    Sdp(String),
    /// The offer could not be negotiated (no common codec, bad transport, ...).
    #[error("the offer cannot be negotiated: {0}")]
    Negotiation(String),
    /// A WHIP offer that wants to receive, or a WHEP offer that wants to send.
    #[error("a {0} offer must only {1} media")]
    WrongDirection(&'static str, &'static str),
    /// The offer has no audio or video m-line.
    #[error("the offer has no audio or video")]
    NoMedia,
}

/// Minimum gap between keyframe requests the SFU sends to one publisher track.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(250);

/// The selective forwarding unit; see the module docs.
#[derive(Debug)]
pub struct Sfu {
    config: SfuConfig,
    next_peer: u64,
    next_track: u64,
    peers: BTreeMap<PeerId, Peer>,
    /// Peers per room, in joining order.
    rooms: HashMap<String, Vec<PeerId>>,
    tracks: BTreeMap<TrackId, Track>,
    /// Remote transport address → peer, learned from the first datagram a peer accepted.
    by_source: HashMap<(Protocol, SocketAddr), PeerId>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<SfuEvent>,
    /// Peers with input since they were last polled.
    dirty: Vec<PeerId>,
    latencies: Vec<Duration>,
    /// Rooms whose frames are copied to `recorded`.
    recorded_rooms: HashSet<String>,
    recorded: VecDeque<RecordedFrame>,
}

impl Sfu {
    /// An empty SFU.
    pub fn new(config: SfuConfig) -> Self {
        Sfu {
            config,
            next_peer: 1,
            next_track: 1,
            peers: BTreeMap::new(),
            rooms: HashMap::new(),
            tracks: BTreeMap::new(),
            by_source: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            dirty: Vec::new(),
            latencies: Vec::new(),
            recorded_rooms: HashSet::new(),
            recorded: VecDeque::new(),
        }
    }

    /// Starts or stops copying `room`'s frames out ([`Sfu::poll_recorded`]). Starting asks
    /// every video publisher of the room for a keyframe, so the recording opens decodable.
    pub fn set_recording(&mut self, now: Instant, room: &str, on: bool) {
        if !on {
            self.recorded_rooms.remove(room);
            return;
        }
        self.recorded_rooms.insert(room.to_string());
        let tracks: Vec<TrackId> = self
            .rooms
            .get(room)
            .into_iter()
            .flatten()
            .filter_map(|id| self.peers.get(id))
            .flat_map(|p| p.tracks.iter().map(|(_, t)| *t))
            .filter(|t| {
                self.tracks
                    .get(t)
                    .is_some_and(|t| t.kind == MediaKind::Video)
            })
            .collect();
        for track in tracks {
            let rid = self
                .tracks
                .get(&track)
                .and_then(|t| t.rids.first().copied());
            self.request_keyframe(now, track, rid, KeyframeRequestKind::Pli);
        }
        self.drive(now);
    }

    /// Whether a publisher is in `room` now.
    pub fn has_publisher(&self, room: &str) -> bool {
        self.rooms
            .get(room)
            .into_iter()
            .flatten()
            .filter_map(|id| self.peers.get(id))
            .any(|p| !p.tracks.is_empty())
    }

    /// Next frame of a recorded room.
    pub fn poll_recorded(&mut self) -> Option<RecordedFrame> {
        self.recorded.pop_front()
    }

    /// Sessions in progress.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Rooms with at least one session.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Whether `peer` is still a live session.
    pub fn contains(&self, peer: PeerId) -> bool {
        self.peers.contains_key(&peer)
    }

    /// Adds a trickled remote candidate (`a=candidate:` value) and counts as signaling.
    pub fn add_remote_candidate(&mut self, now: Instant, peer: PeerId, candidate: Candidate) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.rtc.add_remote_candidate(candidate);
            p.last_activity = now;
            self.dirty.push(peer);
        }
        self.drive(now);
    }

    /// Records signaling activity (for the idle timeout) without other effect.
    pub fn touch(&mut self, now: Instant, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.last_activity = now;
        }
    }

    /// Ends a session now, telling the peer (RTCP BYE, DTLS close_notify).
    pub fn end(&mut self, now: Instant, peer: PeerId, reason: EndReason) {
        let Some(mut p) = self.peers.remove(&peer) else {
            return;
        };
        if p.rtc.close().is_ok() {
            // Flush BYE and close_notify; what is not out after this is dropped.
            for _ in 0..64 {
                match p.rtc.poll_output() {
                    Ok(Output::Transmit(t)) => self.transmits.push_back(t),
                    Ok(Output::Event(_)) => {}
                    Ok(Output::Timeout(_)) | Err(_) => break,
                }
                if !p.rtc.is_alive() {
                    break;
                }
            }
        }
        self.by_source.retain(|_, id| *id != peer);
        let room = p.info.room.clone();
        let gone: Vec<TrackId> = p.tracks.iter().map(|(_, t)| *t).collect();
        for track in &gone {
            if let Some(t) = self.tracks.remove(track) {
                self.events.push_back(SfuEvent::Unpublished {
                    peer,
                    kind: kind_name(t.kind),
                });
            }
        }
        if let Some(members) = self.rooms.get_mut(&room) {
            members.retain(|id| *id != peer);
            if members.is_empty() {
                self.rooms.remove(&room);
            }
        }
        // Subscribers of the departed tracks look for another source.
        if let Some(members) = self.rooms.get(&room) {
            for id in members {
                if let Some(sub) = self.peers.get_mut(id) {
                    for slot in &mut sub.slots {
                        if slot.source.is_some_and(|s| gone.contains(&s)) {
                            slot.source = None;
                            slot.rid = None;
                        }
                    }
                }
            }
        }
        self.events.push_back(SfuEvent::Ended {
            peer,
            room: room.clone(),
            reason,
        });
        self.bind_room(now, &room);
        self.drive(now);
    }

    /// Ends every session (graceful shutdown's last step).
    pub fn end_all(&mut self, now: Instant, reason: EndReason) {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            self.end(now, id, reason);
        }
    }

    /// Feeds one received datagram (over TCP: one RFC 4571 frame without its length);
    /// false when no session claims it.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> bool {
        let Ok(contents) = datagram.try_into() else {
            return false;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
        let known = self
            .by_source
            .get(&(proto, source))
            .copied()
            .filter(|id| self.peers.get(id).is_some_and(|p| p.rtc.accepts(&input)));
        let id = match known {
            Some(id) => id,
            None => {
                let Some(id) = self
                    .peers
                    .iter()
                    .find(|(_, p)| p.rtc.accepts(&input))
                    .map(|(id, _)| *id)
                else {
                    return false;
                };
                self.by_source.insert((proto, source), id);
                id
            }
        };
        let failed = self
            .peers
            .get_mut(&id)
            .map(|p| p.rtc.handle_input(input).is_err())
            .unwrap_or(false);
        if failed {
            self.end(now, id, EndReason::Failed);
        } else {
            self.dirty.push(id);
            self.drive(now);
        }
        true
    }

    /// Advances time: str0m timers, idle and maximum-length limits.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for (id, p) in &mut self.peers {
            if now.duration_since(p.created) >= self.config.max_session {
                expired.push((*id, EndReason::MaxSessionLength));
            } else if now.duration_since(p.last_activity) >= self.config.idle_timeout {
                expired.push((*id, EndReason::IdleTimeout));
            } else if p.rtc_timeout <= now {
                if p.rtc.handle_input(Input::Timeout(now)).is_err() {
                    expired.push((*id, EndReason::Failed));
                } else {
                    self.dirty.push(*id);
                }
            }
        }
        for (id, reason) in expired {
            self.end(now, id, reason);
        }
        self.drive(now);
    }

    /// The next instant [`Sfu::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .map(|p| {
                p.rtc_timeout
                    .min(p.created + self.config.max_session)
                    .min(p.last_activity + self.config.idle_timeout)
            })
            .min()
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the driver.
    pub fn poll_event(&mut self) -> Option<SfuEvent> {
        self.events.pop_front()
    }

    /// Receive-to-send delays of frames forwarded since the last call.
    pub fn drain_latencies(&mut self) -> std::vec::Drain<'_, Duration> {
        self.latencies.drain(..)
    }

    /// Polls every peer with input until str0m only has a timeout left, forwarding as it goes.
    fn drive(&mut self, now: Instant) {
        while let Some(id) = self.dirty.pop() {
            let mut ended = None;
            while let Some(peer) = self.peers.get_mut(&id) {
                if !peer.rtc.is_alive() {
                    ended = Some(EndReason::Disconnected);
                    break;
                }
                match peer.rtc.poll_output() {
                    Ok(Output::Timeout(t)) => {
                        peer.rtc_timeout = t;
                        break;
                    }
                    Ok(Output::Transmit(t)) => self.transmits.push_back(t),
                    Ok(Output::Event(e)) => {
                        if let Some(reason) = self.on_event(now, id, e) {
                            ended = Some(reason);
                            break;
                        }
                    }
                    Err(_) => {
                        ended = Some(EndReason::Failed);
                        break;
                    }
                }
            }
            if let Some(reason) = ended {
                self.end(now, id, reason);
            }
        }
    }

    /// Handles one str0m event of `id`; `Some` ends the session.
    fn on_event(&mut self, now: Instant, id: PeerId, event: Event) -> Option<EndReason> {
        match event {
            Event::Connected => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.connected = true;
                }
                self.events.push_back(SfuEvent::Connected(id));
                // A subscriber that just connected needs a keyframe to start decoding.
                let sources: Vec<(TrackId, Option<Rid>)> = self
                    .peers
                    .get(&id)
                    .map(|p| {
                        p.slots
                            .iter()
                            .filter_map(|s| Some((s.source?, s.rid)))
                            .collect()
                    })
                    .unwrap_or_default();
                for (track, rid) in sources {
                    self.request_keyframe(now, track, rid, KeyframeRequestKind::Pli);
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Some(EndReason::Disconnected);
            }
            Event::MediaData(data) => self.forward(now, id, data),
            Event::KeyframeRequest(req) => self.relay_keyframe_request(now, id, req),
            _ => {}
        }
        None
    }
}
