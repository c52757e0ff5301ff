//! The fuzz targets' seed inputs, run as ordinary tests: real Chromium offers are accepted
//! in the right direction and refused in the wrong one; seeds never panic.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sanctum_media_core::{AcceptError, Direction, PeerInfo, Role, Sfu, SfuConfig};
use sanctum_media_node::signaling::parse_sdpfrag;
use sanctum_media_node::token::Verifier;

fn corpus(target: &str) -> Vec<(PathBuf, String)> {
    corpus_bytes(target)
        .into_iter()
        .map(|(p, b)| (p, String::from_utf8_lossy(&b).into_owned()))
        .collect()
}

fn corpus_bytes(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {dir:?}");
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("seed");
            (p, bytes)
        })
        .collect()
}

fn accept(offer: &str, direction: Direction) -> Result<(), AcceptError> {
    let mut sfu = Sfu::new(SfuConfig {
        idle_timeout: Duration::from_secs(30),
        max_session: Duration::from_secs(600),
        candidates: vec!["127.0.0.1:10000".parse().expect("address")],
        tcp_candidates: vec!["127.0.0.1:10000".parse().expect("address")],
    });
    let info = PeerInfo {
        room: "room".into(),
        user: "user".into(),
        role: Role::Participant,
        direction,
        layer: None,
    };
    sfu.accept(Instant::now(), info, offer).map(|_| ())
}

#[test]
fn chromium_offers_are_accepted_in_their_direction_only() {
    for (path, offer) in corpus("offer") {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("regression-") {
            // Inputs that once crashed the node: refused, in both directions, no panic.
            for d in [Direction::Publish, Direction::Subscribe] {
                assert!(accept(&offer, d).is_err(), "{name}");
            }
            continue;
        }
        let (ok, wrong) = if name.contains("whep") {
            (Direction::Subscribe, Direction::Publish)
        } else {
            (Direction::Publish, Direction::Subscribe)
        };
        accept(&offer, ok).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            matches!(accept(&offer, wrong), Err(AcceptError::WrongDirection(..))),
            "{name} in the wrong direction"
        );
    }
}

#[test]
fn token_and_fragment_seeds_do_not_panic() {
    let (_, public) = sanctum_media_node::token::generate_keypair().expect("key pair");
    let v = Verifier::from_public_pem(&public, "clinic-a", Duration::from_secs(3600)).expect("key");
    for (_, token) in corpus("token") {
        assert!(
            v.verify(token.trim(), "room-1").is_err(),
            "signed by another key"
        );
    }
    for (_, frag) in corpus("sdpfrag") {
        assert_eq!(parse_sdpfrag(&frag).expect("parses").len(), 1);
    }
}
