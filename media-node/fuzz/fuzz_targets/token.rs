//! Any string as a bearer token: verification refuses or accepts, never panics.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sanctum_media_node::token::Verifier;

const PUBLIC: &[u8] = b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAp0SqrHKK+hbUtCF+CpZMOMSnCKn9A9LxwwfTaWXE1tc=\n-----END PUBLIC KEY-----\n";

fuzz_target!(|data: &[u8]| {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    let v = VERIFIER.get_or_init(|| {
        Verifier::from_public_pem(PUBLIC, "clinic-a", Duration::from_secs(3600)).expect("key")
    });
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = v.verify(token, "room-1");
    }
});
