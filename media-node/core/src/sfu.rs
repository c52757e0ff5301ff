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

/// Limits the SFU enforces on every session.
#[derive(Clone, Debug)]
pub struct SfuConfig {
    /// A session with no media and no signaling this long is ended.
    pub idle_timeout: Duration,
    /// No session lasts longer than this.
    pub max_session: Duration,
    /// Addresses the media socket is reachable at, offered as ICE host candidates.
    pub candidates: Vec<SocketAddr>,
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
    /// Remote address → peer, learned from the first datagram a peer accepted.
    by_source: HashMap<SocketAddr, PeerId>,
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

    /// Takes an SDP offer for a new session and answers it, or says why not.
    pub fn accept(
        &mut self,
        now: Instant,
        info: PeerInfo,
        offer: &str,
    ) -> Result<(PeerId, String), AcceptError> {
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| AcceptError::Sdp(e.to_string()))?;
        let mut rtc = Rtc::builder().set_ice_lite(true).build(now);
        for addr in &self.config.candidates {
            let candidate = Candidate::host(*addr, "udp")
                .map_err(|e| AcceptError::Negotiation(e.to_string()))?;
            rtc.add_local_candidate(candidate);
        }
        // str0m 0.25 asserts on some inconsistent payload-type sets in remote offers
        // (found by fuzzing `fuzz/corpus/offer/regression-*`). The `Rtc` is new and is
        // dropped on failure, so a panic here is contained to this one refused offer
        // instead of taking down every session of the process.
        let answer =
            std::panic::catch_unwind(AssertUnwindSafe(|| rtc.sdp_api().accept_offer(offer)))
                .map_err(|_| AcceptError::Negotiation("the offer's payload types conflict".into()))?
                .map_err(|e| AcceptError::Negotiation(e.to_string()))?;

        // The answer names every negotiated m-line; media events only come after DTLS,
        // so directions are checked here, before the session exists.
        let added: Vec<Negotiated> = answer
            .media_lines
            .iter()
            .filter_map(|line| rtc.media(line.mid()))
            .map(|m| Negotiated {
                mid: m.mid(),
                kind: m.kind(),
                direction: m.direction(),
                rids: match m.rids_rx() {
                    Rids::Specific(r) => r.clone(),
                    Rids::None | Rids::Any => Vec::new(),
                },
            })
            .collect();
        check_directions(info.direction, &added)?;
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(_) => {}
                Err(e) => return Err(AcceptError::Negotiation(e.to_string())),
            }
        };

        let id = PeerId(self.next_peer);
        self.next_peer += 1;
        let room = info.room.clone();
        let mut peer = Peer {
            info,
            rtc,
            created: now,
            last_activity: now,
            rtc_timeout: timeout,
            connected: false,
            tracks: Vec::new(),
            slots: Vec::new(),
        };
        let mut new_tracks = Vec::new();
        for m in added {
            match peer.info.direction {
                Direction::Publish => {
                    let track = TrackId(self.next_track);
                    self.next_track += 1;
                    self.tracks.insert(
                        track,
                        Track {
                            owner: id,
                            mid: m.mid,
                            kind: m.kind,
                            rids: m.rids,
                            last_keyframe_request: None,
                        },
                    );
                    peer.tracks.push((m.mid, track));
                    new_tracks.push(kind_name(m.kind));
                }
                Direction::Subscribe => peer.slots.push(Slot {
                    mid: m.mid,
                    kind: m.kind,
                    source: None,
                    rid: None,
                }),
            }
        }
        self.peers.insert(id, peer);
        self.rooms.entry(room.clone()).or_default().push(id);
        for kind in new_tracks {
            self.events
                .push_back(SfuEvent::Published { peer: id, kind });
        }
        self.bind_room(now, &room);
        self.drive(now);
        Ok((id, answer.to_sdp_string()))
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

    /// Feeds one received datagram; false when no session claims it.
    pub fn handle_receive(
        &mut self,
        now: Instant,
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
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let known = self
            .by_source
            .get(&source)
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
                self.by_source.insert(source, id);
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

    fn forward(&mut self, now: Instant, from: PeerId, data: MediaData) {
        let Some(publisher) = self.peers.get_mut(&from) else {
            return;
        };
        publisher.last_activity = now;
        let Some(track) = publisher
            .tracks
            .iter()
            .find(|(mid, _)| *mid == data.mid)
            .map(|(_, t)| *t)
        else {
            return;
        };
        let room = publisher.info.room.clone();
        // Rooms that are not recorded pay one lookup; of a recorded room, one simulcast
        // layer is recorded: the first (highest) the publisher sends.
        let recorded_layer = || {
            let rids = self
                .tracks
                .get(&track)
                .map(|t| t.rids.as_slice())
                .unwrap_or(&[]);
            data.rid.is_none() || rids.first() == data.rid.as_ref()
        };
        if self.recorded_rooms.contains(&room) && recorded_layer() {
            let spec = data.params.spec();
            self.recorded.push_back(RecordedFrame {
                room: room.clone(),
                track: track.0,
                kind: self
                    .tracks
                    .get(&track)
                    .map(|t| t.kind)
                    .unwrap_or(MediaKind::Video),
                codec: spec.codec,
                channels: spec.channels,
                ticks: data.time.numer(),
                clock_rate: data.time.denom(),
                arrival: data.network_time,
                keyframe: data.is_keyframe(),
                data: data.data.clone(),
            });
        }
        if !data.contiguous {
            // Frames were lost beyond what NACK recovered: ask for a fresh keyframe.
            self.request_keyframe(now, track, data.rid, KeyframeRequestKind::Fir);
        }
        let Some(members) = self.rooms.get(&room) else {
            return;
        };
        for sub_id in members.clone() {
            let Some(sub) = self.peers.get_mut(&sub_id) else {
                continue;
            };
            if !sub.connected {
                continue;
            }
            let Some(slot) = sub.slots.iter().find(|s| s.source == Some(track)) else {
                continue;
            };
            if data.rid.is_some() && slot.rid != data.rid {
                continue;
            }
            let mid = slot.mid;
            let Some(writer) = sub.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                continue;
            };
            if writer
                .write(pt, data.network_time, data.time, data.data.clone())
                .is_ok()
            {
                sub.last_activity = now;
                self.latencies
                    .push(now.saturating_duration_since(data.network_time));
                self.dirty.push(sub_id);
            }
        }
    }

    fn relay_keyframe_request(&mut self, now: Instant, from: PeerId, req: KeyframeRequest) {
        let Some(slot) = self
            .peers
            .get(&from)
            .and_then(|p| p.slots.iter().find(|s| s.mid == req.mid))
        else {
            return;
        };
        if let Some(track) = slot.source {
            let rid = slot.rid;
            self.request_keyframe(now, track, rid, req.kind);
        }
    }

    /// Asks a track's publisher for a keyframe, at most once per [`KEYFRAME_REQUEST_GAP`].
    fn request_keyframe(
        &mut self,
        now: Instant,
        track: TrackId,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
    ) {
        let Some(t) = self.tracks.get_mut(&track) else {
            return;
        };
        if t.last_keyframe_request
            .is_some_and(|last| now.duration_since(last) < KEYFRAME_REQUEST_GAP)
        {
            return;
        }
        let Some(publisher) = self.peers.get_mut(&t.owner) else {
            return;
        };
        let Some(mut writer) = publisher.rtc.writer(t.mid) else {
            return;
        };
        let kind = if writer.is_request_keyframe_possible(kind) {
            kind
        } else {
            KeyframeRequestKind::Pli
        };
        if writer.is_request_keyframe_possible(kind) && writer.request_keyframe(rid, kind).is_ok() {
            t.last_keyframe_request = Some(now);
            self.dirty.push(t.owner);
        }
    }

    /// Gives every empty subscriber slot in `room` a track of its kind, oldest first.
    fn bind_room(&mut self, now: Instant, room: &str) {
        let Some(members) = self.rooms.get(room).cloned() else {
            return;
        };
        let room_tracks: Vec<TrackId> = members
            .iter()
            .filter_map(|id| self.peers.get(id))
            .flat_map(|p| p.tracks.iter().map(|(_, t)| *t))
            .collect();
        let mut keyframes = Vec::new();
        for sub_id in &members {
            let Some(sub) = self.peers.get_mut(sub_id) else {
                continue;
            };
            let layer = sub.info.layer.clone();
            let mut taken: Vec<TrackId> = sub.slots.iter().filter_map(|s| s.source).collect();
            for slot in sub.slots.iter_mut().filter(|s| s.source.is_none()) {
                let Some((track_id, track)) = room_tracks
                    .iter()
                    .filter(|t| !taken.contains(t))
                    .filter_map(|t| self.tracks.get(t).map(|track| (*t, track)))
                    .find(|(_, track)| track.kind == slot.kind && track.owner != *sub_id)
                else {
                    continue;
                };
                slot.source = Some(track_id);
                slot.rid = choose_layer(&track.rids, layer.as_deref());
                taken.push(track_id);
                self.events.push_back(SfuEvent::Subscribed {
                    peer: *sub_id,
                    from: track.owner,
                    kind: kind_name(track.kind),
                });
                if sub.connected {
                    keyframes.push((track_id, slot.rid));
                }
            }
        }
        for (track, rid) in keyframes {
            self.request_keyframe(now, track, rid, KeyframeRequestKind::Pli);
        }
    }
}

/// One negotiated audio or video m-line.
struct Negotiated {
    mid: Mid,
    kind: MediaKind,
    /// Direction on the SFU's side.
    direction: str0m::media::Direction,
    rids: Vec<Rid>,
}

/// The subscriber's preferred layer if the publisher sends it, else the first (highest).
fn choose_layer(rids: &[Rid], preferred: Option<&str>) -> Option<Rid> {
    preferred
        .and_then(|want| rids.iter().find(|r| &***r == want).copied())
        .or_else(|| rids.first().copied())
}

fn check_directions(direction: Direction, added: &[Negotiated]) -> Result<(), AcceptError> {
    use str0m::media::Direction as D;
    if added.is_empty() {
        return Err(AcceptError::NoMedia);
    }
    for m in added {
        // `m.direction` is the SFU's side of the m-line.
        let ok = match direction {
            Direction::Publish => matches!(m.direction, D::RecvOnly | D::Inactive),
            Direction::Subscribe => matches!(m.direction, D::SendOnly | D::Inactive),
        };
        if !ok {
            return Err(match direction {
                Direction::Publish => AcceptError::WrongDirection("WHIP", "send"),
                Direction::Subscribe => AcceptError::WrongDirection("WHEP", "receive"),
            });
        }
    }
    Ok(())
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}
