//! Any bytes as a WHIP or WHEP offer: the SFU answers or refuses, never panics, and a
//! refused offer leaves no session behind.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sanctum_media_core::{Direction, PeerInfo, Role, Sfu, SfuConfig};

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on any panic, even one the SFU contains with catch_unwind (as
    // it does for str0m's own assertions on hostile offers). Restore the default hook so
    // contained panics count as refusals; a panic escaping `accept` still aborts.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| drop(std::panic::take_hook()));
    let Ok(offer) = std::str::from_utf8(data) else {
        return;
    };
    let mut sfu = Sfu::new(SfuConfig {
        idle_timeout: Duration::from_secs(30),
        max_session: Duration::from_secs(600),
        candidates: vec!["127.0.0.1:10000".parse().expect("address")],
        tcp_candidates: vec!["127.0.0.1:10000".parse().expect("address")],
    });
    for direction in [Direction::Publish, Direction::Subscribe] {
        let info = PeerInfo {
            room: "room".into(),
            user: "user".into(),
            role: Role::Participant,
            direction,
            layer: None,
        };
        let before = sfu.peer_count();
        if sfu.accept(Instant::now(), info, offer).is_err() {
            assert_eq!(sfu.peer_count(), before);
        }
    }
});
