//! The SFU against real str0m peers on a simulated network with simulated time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sanctum_media_core::str0m::change::{SdpAnswer, SdpPendingOffer};
use sanctum_media_core::str0m::format::Codec;
use sanctum_media_core::str0m::media::{
    Direction as MediaDir, KeyframeRequestKind, MediaKind, MediaTime, Mid, Simulcast,
    SimulcastLayer,
};
use sanctum_media_core::str0m::net::{Protocol, Receive};
use sanctum_media_core::str0m::{Candidate, Event, Input, Output, Rtc};
use sanctum_media_core::{
    AcceptError, Direction, EndReason, PeerId, PeerInfo, Role, Sfu, SfuConfig, SfuEvent,
};

const SFU: &str = "127.0.0.1:5000";

struct Client {
    rtc: Rtc,
    addr: SocketAddr,
    timeout: Instant,
    id: Option<PeerId>,
    video: Option<Mid>,
    audio: Option<Mid>,
    received: Vec<(MediaKind, Vec<u8>)>,
    keyframe_requests: usize,
    connected: bool,
}

struct Net {
    /// The transport every client and the SFU's candidate use.
    proto: Protocol,
    sfu: Sfu,
    now: Instant,
    clients: Vec<Client>,
    events: Vec<SfuEvent>,
}

fn info(direction: Direction, user: &str) -> PeerInfo {
    PeerInfo {
        room: "room-1".into(),
        user: user.into(),
        role: Role::Participant,
        direction,
        layer: None,
    }
}

impl Net {
    fn new(idle: Duration, max: Duration) -> Self {
        Self::over(Protocol::Udp, idle, max)
    }

    /// A network where the SFU offers only a candidate of `proto` and clients use `proto`.
    fn over(proto: Protocol, idle: Duration, max: Duration) -> Self {
        let sfu: SocketAddr = SFU.parse().expect("addr");
        let (candidates, tcp_candidates) = match proto {
            Protocol::Tcp => (Vec::new(), vec![sfu]),
            _ => (vec![sfu], Vec::new()),
        };
        Net {
            proto,
            sfu: Sfu::new(SfuConfig {
                idle_timeout: idle,
                max_session: max,
                candidates,
                tcp_candidates,
            }),
            now: Instant::now(),
            clients: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Adds a client offering to send (WHIP) or receive (WHEP) audio and video.
    fn join(&mut self, direction: Direction, user: &str) -> Result<usize, AcceptError> {
        self.join_with(direction, user, None, None)
    }

    /// [`Net::join`] with simulcast layers for a publisher's video or a subscriber's layer.
    fn join_with(
        &mut self,
        direction: Direction,
        user: &str,
        send_layers: Option<&[&str]>,
        layer: Option<&str>,
    ) -> Result<usize, AcceptError> {
        let n = self.clients.len();
        let addr: SocketAddr = format!("127.0.0.{}:6000", n + 2).parse().expect("addr");
        let mut rtc = Rtc::builder().build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, self.proto).expect("candidate"));
        let dir = match direction {
            Direction::Publish => MediaDir::SendOnly,
            Direction::Subscribe => MediaDir::RecvOnly,
        };
        let mut api = rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, dir, None, None, None);
        let simulcast = send_layers.map(|rids| {
            let mut s = Simulcast::new();
            for rid in rids {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        let video = api.add_media(MediaKind::Video, dir, None, None, simulcast);
        let (offer, pending): (_, SdpPendingOffer) = api.apply().expect("offer");
        let mut peer_info = info(direction, user);
        peer_info.layer = layer.map(str::to_string);
        let (id, answer) = self
            .sfu
            .accept(self.now, peer_info, &offer.to_sdp_string())?;
        rtc.sdp_api()
            .accept_answer(
                pending,
                SdpAnswer::from_sdp_string(&answer).expect("answer"),
            )
            .expect("accept answer");
        self.clients.push(Client {
            rtc,
            addr,
            timeout: self.now,
            id: Some(id),
            video: Some(video),
            audio: Some(audio),
            received: Vec::new(),
            keyframe_requests: 0,
            connected: false,
        });
        Ok(n)
    }

    /// Moves packets until nobody has anything to send, then advances time by `step`.
    fn step(&mut self, step: Duration) {
        for _ in 0..1000 {
            let mut moved = false;
            for c in &mut self.clients {
                if c.id.is_none() {
                    continue;
                }
                loop {
                    match c.rtc.poll_output() {
                        Ok(Output::Timeout(t)) => {
                            c.timeout = t;
                            break;
                        }
                        Ok(Output::Transmit(t)) => {
                            moved = true;
                            assert_eq!(t.proto, self.proto, "a client sent on another transport");
                            self.sfu.handle_receive(
                                self.now,
                                t.proto,
                                t.source,
                                t.destination,
                                &t.contents,
                            );
                        }
                        Ok(Output::Event(e)) => match e {
                            Event::Connected => c.connected = true,
                            Event::MediaData(d) => {
                                let kind = if Some(d.mid) == c.video {
                                    MediaKind::Video
                                } else {
                                    MediaKind::Audio
                                };
                                c.received.push((kind, d.data.to_vec()));
                            }
                            Event::KeyframeRequest(_) => c.keyframe_requests += 1,
                            _ => {}
                        },
                        Err(_) => break,
                    }
                }
            }
            while let Some(t) = self.sfu.poll_transmit() {
                moved = true;
                assert_eq!(t.proto, self.proto, "the SFU sent on another transport");
                if let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.destination) {
                    let input = Input::Receive(
                        self.now,
                        Receive {
                            proto: t.proto,
                            source: t.source,
                            destination: t.destination,
                            contents: (&t.contents[..]).try_into().expect("datagram"),
                        },
                    );
                    let _ = c.rtc.handle_input(input);
                }
            }
            while let Some(e) = self.sfu.poll_event() {
                self.events.push(e);
            }
            if !moved {
                break;
            }
        }
        self.now += step;
        for c in &mut self.clients {
            if c.timeout <= self.now {
                let _ = c.rtc.handle_input(Input::Timeout(self.now));
            }
        }
        if self.sfu.poll_timeout().is_some_and(|t| t <= self.now) {
            self.sfu.handle_timeout(self.now);
        }
        while let Some(e) = self.sfu.poll_event() {
            self.events.push(e);
        }
    }

    fn connect_all(&mut self) {
        for _ in 0..500 {
            if self.clients.iter().all(|c| c.connected) {
                return;
            }
            self.step(Duration::from_millis(5));
        }
        panic!("clients did not connect");
    }

    /// Client `c` sends one VP8 frame and one Opus packet tagged with `n`.
    fn send(&mut self, c: usize, n: u8) {
        let now = self.now;
        let client = &mut self.clients[c];
        for (mid, codec, payload) in [
            (client.video, Codec::Vp8, vec![0x10, 0x00, 0x00, 0xAB, n]),
            (client.audio, Codec::Opus, vec![0xFC, 0xAB, n]),
        ] {
            let mid = mid.expect("mid");
            let pt = client
                .rtc
                .codec_config()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt())
                .expect("codec");
            let time = MediaTime::from_millis(u64::from(n) * 20);
            let writer = client.rtc.writer(mid).expect("writer");
            writer.write(pt, now, time, payload).expect("write");
        }
    }
}

#[test]
fn one_publisher_reaches_every_subscriber() {
    let mut net = Net::new(Duration::from_secs(30), Duration::from_secs(600));
    let publisher = net.join(Direction::Publish, "u-pub").expect("publish");
    let subs: Vec<usize> = (0..3)
        .map(|i| {
            net.join(Direction::Subscribe, &format!("u-sub-{i}"))
                .expect("subscribe")
        })
        .collect();
    net.connect_all();
    for n in 0..50u8 {
        net.send(publisher, n);
        net.step(Duration::from_millis(20));
    }
    for _ in 0..50 {
        net.step(Duration::from_millis(20));
    }
    for s in subs {
        let c = &net.clients[s];
        let video: Vec<&Vec<u8>> = c
            .received
            .iter()
            .filter(|(k, _)| *k == MediaKind::Video)
            .map(|(_, d)| d)
            .collect();
        let audio = c
            .received
            .iter()
            .filter(|(k, _)| *k == MediaKind::Audio)
            .count();
        assert!(
            video.len() >= 45,
            "subscriber {s} got {} video frames",
            video.len()
        );
        assert!(audio >= 45, "subscriber {s} got {audio} audio packets");
        assert!(
            video.iter().all(|d| d.ends_with(&[0xAB, d[d.len() - 1]])),
            "payload bytes arrive unchanged"
        );
    }
    assert_eq!(net.sfu.room_count(), 1);
    assert_eq!(net.sfu.peer_count(), 4);
    let subscribed = net
        .events
        .iter()
        .filter(|e| matches!(e, SfuEvent::Subscribed { .. }))
        .count();
    assert_eq!(subscribed, 6, "three subscribers, audio and video each");
}

#[test]
fn sessions_over_ice_tcp_forward_like_udp() {
    let mut net = Net::over(
        Protocol::Tcp,
        Duration::from_secs(30),
        Duration::from_secs(600),
    );
    let publisher = net.join(Direction::Publish, "u-pub").expect("publish");
    let sub = net.join(Direction::Subscribe, "u-sub").expect("subscribe");
    net.connect_all();
    for n in 0..20u8 {
        net.send(publisher, n);
        net.step(Duration::from_millis(20));
    }
    for _ in 0..20 {
        net.step(Duration::from_millis(20));
    }
    let video = net.clients[sub]
        .received
        .iter()
        .filter(|(k, _)| *k == MediaKind::Video)
        .count();
    assert!(video >= 18, "the TCP subscriber got {video} video frames");
}

#[test]
fn a_subscriber_keyframe_request_reaches_the_publisher() {
    let mut net = Net::new(Duration::from_secs(30), Duration::from_secs(600));
    let publisher = net.join(Direction::Publish, "u-pub").expect("publish");
    let sub = net.join(Direction::Subscribe, "u-sub").expect("subscribe");
    net.connect_all();
    for n in 0..10u8 {
        net.send(publisher, n);
        net.step(Duration::from_millis(20));
    }
    // Past the SFU's own keyframe request at connect and its throttle.
    for n in 10..40u8 {
        net.send(publisher, n);
        net.step(Duration::from_millis(20));
    }
    let before = net.clients[publisher].keyframe_requests;
    let mid = net.clients[sub].video.expect("video");
    net.clients[sub]
        .rtc
        .writer(mid)
        .expect("writer")
        .request_keyframe(None, KeyframeRequestKind::Pli)
        .expect("pli");
    for _ in 0..50 {
        net.step(Duration::from_millis(20));
    }
    assert!(
        net.clients[publisher].keyframe_requests > before,
        "the PLI was forwarded to the publisher"
    );
}

#[test]
fn idle_and_overlong_sessions_end() {
    let mut net = Net::new(Duration::from_secs(2), Duration::from_secs(6));
    // A subscriber alone in its room receives nothing and is ended as idle.
    let idle = net.join(Direction::Subscribe, "u-idle").expect("subscribe");
    net.connect_all();
    for _ in 0..150 {
        net.step(Duration::from_millis(20));
    }
    let idle_id = net.clients[idle].id.expect("id");
    assert!(
        net.events.contains(&SfuEvent::Ended {
            peer: idle_id,
            room: "room-1".into(),
            reason: EndReason::IdleTimeout
        }),
        "idle subscriber ended: {:?}",
        net.events
    );
    assert!(!net.sfu.contains(idle_id));
    net.clients[idle].id = None;
    // A publisher that keeps sending is never idle; it ends at the maximum length.
    let publisher = net.join(Direction::Publish, "u-pub").expect("publish");
    net.connect_all_but(idle);
    let pub_id = net.clients[publisher].id.expect("id");
    let started = net.now;
    for n in 0..=255u8 {
        if !net.sfu.contains(pub_id) {
            break;
        }
        net.send(publisher, n);
        net.step(Duration::from_millis(40));
    }
    assert!(
        net.events.contains(&SfuEvent::Ended {
            peer: pub_id,
            room: "room-1".into(),
            reason: EndReason::MaxSessionLength
        }),
        "publisher ended at the maximum length: {:?}",
        net.events
    );
    assert!(net.now.duration_since(started) >= Duration::from_secs(5));
    assert_eq!(net.sfu.peer_count(), 0);
    assert_eq!(net.sfu.room_count(), 0);
}

#[test]
fn a_subscriber_moves_to_the_next_publisher() {
    let mut net = Net::new(Duration::from_secs(30), Duration::from_secs(600));
    let first = net.join(Direction::Publish, "u-a").expect("publish");
    let sub = net.join(Direction::Subscribe, "u-sub").expect("subscribe");
    net.connect_all();
    let first_id = net.clients[first].id.expect("id");
    net.sfu.end(net.now, first_id, EndReason::ClientLeft);
    net.clients[first].id = None;
    let second = net.join(Direction::Publish, "u-b").expect("publish");
    net.connect_all_but(first);
    net.clients[sub].received.clear();
    for n in 0..20u8 {
        net.send(second, n);
        net.step(Duration::from_millis(20));
    }
    for _ in 0..20 {
        net.step(Duration::from_millis(20));
    }
    let got = net.clients[sub].received.len();
    assert!(
        got >= 30,
        "the subscriber receives the second publisher ({got})"
    );
}

#[test]
fn offers_in_the_wrong_direction_or_not_sdp_are_refused() {
    let mut net = Net::new(Duration::from_secs(30), Duration::from_secs(600));
    let mut rtc = Rtc::builder().build(net.now);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, MediaDir::SendOnly, None, None, None);
    let (offer, _) = api.apply().expect("offer");
    let err = net
        .sfu
        .accept(
            net.now,
            info(Direction::Subscribe, "u"),
            &offer.to_sdp_string(),
        )
        .expect_err("WHEP offer that sends");
    assert!(
        matches!(err, AcceptError::WrongDirection("WHEP", _)),
        "{err}"
    );
    let err = net
        .sfu
        .accept(net.now, info(Direction::Publish, "u"), "v=0\r\nnot sdp")
        .expect_err("garbage");
    assert!(matches!(err, AcceptError::Sdp(_)), "{err}");
    assert_eq!(net.sfu.peer_count(), 0, "nothing is left behind");
}

impl Net {
    fn connect_all_but(&mut self, skip: usize) {
        for _ in 0..500 {
            if self
                .clients
                .iter()
                .enumerate()
                .all(|(i, c)| i == skip || c.connected)
            {
                return;
            }
            self.step(Duration::from_millis(5));
        }
        panic!("clients did not connect");
    }
}

#[test]
fn each_subscriber_gets_the_simulcast_layer_it_asked_for() {
    let mut net = Net::new(Duration::from_secs(30), Duration::from_secs(600));
    let publisher = net
        .join_with(Direction::Publish, "u-pub", Some(&["h", "l"]), None)
        .expect("publish");
    let high = net
        .join(Direction::Subscribe, "u-default")
        .expect("subscribe");
    let low = net
        .join_with(Direction::Subscribe, "u-low", None, Some("l"))
        .expect("subscribe");
    net.connect_all();
    let pt = net.clients[publisher]
        .rtc
        .codec_config()
        .find(|p| p.spec().codec == Codec::Vp8)
        .map(|p| p.pt())
        .expect("vp8");
    let mid = net.clients[publisher].video.expect("video");
    for n in 0..40u8 {
        let now = net.now;
        for (rid, marker) in [("h", 0xAA), ("l", 0x11)] {
            net.clients[publisher]
                .rtc
                .writer(mid)
                .expect("writer")
                .rid(rid.into())
                .write(
                    pt,
                    now,
                    MediaTime::from_millis(u64::from(n) * 33),
                    vec![0x10, marker, n],
                )
                .expect("write");
        }
        net.step(Duration::from_millis(33));
    }
    for _ in 0..30 {
        net.step(Duration::from_millis(20));
    }
    let markers = |c: usize| -> Vec<u8> {
        net.clients[c]
            .received
            .iter()
            .filter(|(k, _)| *k == MediaKind::Video)
            .map(|(_, d)| d[1])
            .collect()
    };
    let (h, l) = (markers(high), markers(low));
    assert!(
        h.len() >= 30 && h.iter().all(|m| *m == 0xAA),
        "default gets h: {h:?}"
    );
    assert!(
        l.len() >= 30 && l.iter().all(|m| *m == 0x11),
        "asked for l: {l:?}"
    );
}
