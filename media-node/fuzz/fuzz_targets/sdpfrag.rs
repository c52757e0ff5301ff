//! Any text as a trickle-ice-sdpfrag PATCH body: candidates parse or the line is named.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sanctum_media_node::signaling::parse_sdpfrag;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(line) = parse_sdpfrag(text) {
            assert!(line >= 1 && line <= text.lines().count());
        }
    }
});
