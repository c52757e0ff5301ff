//! Forwarding: a publisher's media written to every subscriber slot bound to its track
//! (with the subscriber's simulcast layer), keyframe requests relayed back, throttled, and
//! slots re-bound when tracks come and go.

use super::*;

impl Sfu {
    pub(super) fn forward(&mut self, now: Instant, from: PeerId, data: MediaData) {
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

    pub(super) fn relay_keyframe_request(
        &mut self,
        now: Instant,
        from: PeerId,
        req: KeyframeRequest,
    ) {
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
    pub(super) fn request_keyframe(
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
    pub(super) fn bind_room(&mut self, now: Instant, room: &str) {
        let Some(members) = self.rooms.get(room).cloned() else {
            return;
        };
        // With the user who publishes each: a participant is not sent its own media back
        // (its publishing session is another peer than its subscribing one).
        let room_tracks: Vec<(TrackId, String)> = members
            .iter()
            .filter_map(|id| self.peers.get(id))
            .flat_map(|p| p.tracks.iter().map(move |(_, t)| (*t, p.info.user.clone())))
            .collect();
        let mut keyframes = Vec::new();
        for sub_id in &members {
            let Some(sub) = self.peers.get_mut(sub_id) else {
                continue;
            };
            let layer = sub.info.layer.clone();
            let user = sub.info.user.clone();
            let mut taken: Vec<TrackId> = sub.slots.iter().filter_map(|s| s.source).collect();
            for slot in sub.slots.iter_mut().filter(|s| s.source.is_none()) {
                let Some((track_id, track)) = room_tracks
                    .iter()
                    .filter(|(t, publisher)| !taken.contains(t) && *publisher != user)
                    .filter_map(|(t, _)| self.tracks.get(t).map(|track| (*t, track)))
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

/// The subscriber's preferred layer if the publisher sends it, else the first (highest).
pub(super) fn choose_layer(rids: &[Rid], preferred: Option<&str>) -> Option<Rid> {
    preferred
        .and_then(|want| rids.iter().find(|r| &***r == want).copied())
        .or_else(|| rids.first().copied())
}

pub(super) fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}
