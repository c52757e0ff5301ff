//! Recording encryption benchmark: the sealed-recording format (`recording::seal`) against
//! raw AES-256-GCM over the same bytes, in the same run. Prints a Markdown table and writes
//! `target/bench/recording-encryption.json`.
//!
//! `cargo bench -p sanctum-media-node --bench sealing [-- MIB [ROUNDS]]`
//!
//! Baseline: aws-lc-rs AES-256-GCM sealing the plaintext in place, 64 KiB at a time (the
//! format's chunk size) with a counter nonce: the cipher's cost and nothing else. The sealed
//! rows run `Sealer::start`, `push` and `finish` as the recorder does, handing output off
//! at the recorder's 8 MiB part size (upload excluded), once with frame-sized pushes
//! (1,200 bytes, how muxer output arrives) and once with chunk-sized pushes. Rounds
//! alternate baseline and sealed so machine noise hits both; the median round is reported.

mod report;

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sanctum_media_node::recording::seal::{self, Sealer};

const CHUNK: usize = 64 * 1024;
const HANDOFF: usize = 8 * 1024 * 1024;

fn raw_gcm(plain: &[u8], work: &mut Vec<u8>) -> Duration {
    work.clear();
    work.extend_from_slice(plain);
    let start = Instant::now();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).expect("key"));
    let mut tags = 0u8;
    for (i, chunk) in work.chunks_mut(CHUNK).enumerate() {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&[0u8; 32]),
                chunk,
            )
            .expect("seal");
        tags ^= tag.as_ref()[0];
    }
    black_box(tags);
    start.elapsed()
}

fn sealed(plain: &[u8], push: usize) -> Duration {
    let tenant_key = [9u8; 32];
    let mut out = Vec::with_capacity(HANDOFF + 2 * CHUNK);
    let start = Instant::now();
    let (mut sealer, _) =
        Sealer::start(&tenant_key, "bench", "rec-1", 1, "video/webm", &mut out).expect("start");
    let mut handed_off = 0usize;
    for piece in plain.chunks(push) {
        sealer.push(piece, &mut out).expect("push");
        if out.len() >= HANDOFF {
            handed_off += black_box(out.len());
            out.clear();
        }
    }
    sealer.finish(&mut out).expect("finish");
    handed_off += black_box(out.len());
    let elapsed = start.elapsed();
    assert!(
        handed_off > plain.len(),
        "sealed output is smaller than the input"
    );
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mib_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1_048_576.0 / d.as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mib: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(256);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(7);
    // Incompressible bytes, as encoded media is; AES does not care, allocation might.
    let mut plain = vec![0u8; mib * 1_048_576];
    aws_lc_rs::rand::fill(&mut plain).expect("random");

    // A round trip first: what is measured must be the real format.
    let mut check = Vec::new();
    let (mut s, _) =
        Sealer::start(&[9u8; 32], "bench", "rec-1", 1, "video/webm", &mut check).expect("start");
    s.push(&plain[..3 * CHUNK + 5], &mut check).expect("push");
    s.finish(&mut check).expect("finish");
    let opened = seal::open(&[9u8; 32], &check).expect("open");
    assert_eq!(&opened[..], &plain[..3 * CHUNK + 5]);

    let mut work = Vec::with_capacity(plain.len());
    let cases = [
        ("frame pushes (1,200 B)", 1200usize),
        ("chunk pushes (64 KiB)", CHUNK),
    ];
    let mut raw = Vec::new();
    let mut rows: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    // Warm-up round (page faults, CPU frequency), not counted.
    raw_gcm(&plain, &mut work);
    sealed(&plain, CHUNK);
    for _ in 0..rounds {
        for (i, (_, push)) in cases.iter().enumerate() {
            raw.push(raw_gcm(&plain, &mut work));
            rows[i].push(sealed(&plain, *push));
        }
    }
    let raw = median(raw);
    let raw_rate = mib_per_s(plain.len(), raw);
    eprintln!(
        "{mib} MiB, {rounds} rounds, median of each; baseline raw AES-256-GCM {raw_rate:.0} MiB/s"
    );
    println!("| path | MiB/s | ratio to raw AES-256-GCM |");
    println!("|---|---:|---:|");
    println!("| raw AES-256-GCM, 64 KiB in place (baseline) | {raw_rate:.0} | 1.00 |");
    let mut json = vec![serde_json::json!({
        "path": "raw-aes-256-gcm", "mib_per_s": raw_rate, "ratio_to_raw": 1.0,
    })];
    for ((label, push), times) in cases.iter().zip(rows) {
        let rate = mib_per_s(plain.len(), median(times));
        let ratio = rate / raw_rate;
        println!("| sealed recording, {label} | {rate:.0} | {ratio:.2} |");
        json.push(serde_json::json!({
            "path": "sealed", "push_bytes": push, "mib_per_s": rate, "ratio_to_raw": ratio,
        }));
    }

    report::write_json(
        "recording-encryption.json",
        &serde_json::json!({
            "mib": mib, "rounds": rounds, "chunk_bytes": CHUNK, "rows": json,
        }),
    );
}
