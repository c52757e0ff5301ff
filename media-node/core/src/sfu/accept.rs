//! Accepting a WHIP/WHEP offer: a peer negotiated with the directions its role allows,
//! joined to its room, and its subscribe slots bound to the room's tracks.

use super::forward::kind_name;
use super::*;
use str0m::net::TcpType;

impl Sfu {
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
        for addr in &self.config.tcp_candidates {
            let candidate = Candidate::builder()
                .tcp()
                .host(*addr)
                .tcptype(TcpType::Passive)
                .build()
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
}

/// One negotiated audio or video m-line.
struct Negotiated {
    mid: Mid,
    kind: MediaKind,
    /// Direction on the SFU's side.
    direction: str0m::media::Direction,
    rids: Vec<Rid>,
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
