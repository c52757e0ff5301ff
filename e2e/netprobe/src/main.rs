//! `sanctum-netprobe`: runs in a pod of the local cluster's real node and reports which
//! addresses that pod can reach, so the e2e suite can tell what the NetworkPolicies let
//! through. It only observes: every check is one connection attempt, one lookup or one
//! STUN transaction, and the verdicts are left to the test.
//!
//! Usage: `sanctum-netprobe CHECK...`, each CHECK one of
//!
//! - `tcp:ADDR:PORT`: a TCP connection is established;
//! - `dns:NAME`: NAME resolves through the pod's resolver;
//! - `stun:ADDR:PORT:USERNAME:PASSWORD`: an ICE connectivity check (STUN Binding request
//!   with the short-term credentials of a WebRTC session) gets a success response, which
//!   only a media node that holds that session sends.
//!
//! With `--wait-for CHECK` (or `--wait-refused CHECK`) first, that check is retried
//! (every 250 ms, for up to `PROBE_WAIT_MS`, 30 s) until it succeeds (or fails) before the
//! others run: a NetworkPolicy enforcer learns of a new pod a moment after it starts, so
//! the verdicts are read once the pod's own rules are in force.
//!
//! Prints a JSON array of `{"check", "reachable", "detail"}` and writes the same to the
//! pod's termination message. Exits 0 when every check ran, whatever it found.

#![forbid(unsafe_code)]

use std::io::{ErrorKind, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

const TERMINATION_LOG: &str = "/dev/termination-log";
const MAGIC_COOKIE: u32 = 0x2112_A442;

fn main() {
    let timeout = std::env::var("PROBE_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(3));
    let mut checks: Vec<String> = std::env::args().skip(1).collect();
    let wait_for = match checks.first().map(String::as_str) {
        Some("--wait-for") => Some(true),
        Some("--wait-refused") => Some(false),
        _ => None,
    };
    if let (Some(want), true) = (wait_for, checks.len() > 1) {
        let first = checks[1].clone();
        checks.drain(..2);
        let wait = std::env::var("PROBE_WAIT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(30));
        let deadline = Instant::now() + wait;
        while run(&first, timeout.min(Duration::from_secs(1))).is_ok() != want
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    if checks.is_empty() {
        eprintln!(
            "usage: sanctum-netprobe tcp:ADDR:PORT | dns:NAME | stun:ADDR:PORT:USER:PASS ..."
        );
        std::process::exit(2);
    }
    let results: Vec<serde_json::Value> = checks
        .iter()
        .map(|check| {
            let (reachable, detail) = match run(check, timeout) {
                Ok(detail) => (true, detail),
                Err(detail) => (false, detail),
            };
            serde_json::json!({"check": check, "reachable": reachable, "detail": detail})
        })
        .collect();
    let text = serde_json::Value::Array(results).to_string();
    println!("{text}");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(TERMINATION_LOG)
    {
        // The termination message is how the test reads the result; stdout is the fallback.
        let _ = file.write_all(text.as_bytes());
    }
}

/// Runs one check: `Ok` with what was reached, `Err` with why nothing was.
fn run(check: &str, timeout: Duration) -> Result<String, String> {
    let (kind, rest) = check
        .split_once(':')
        .ok_or_else(|| format!("not a check: {check}"))?;
    match kind {
        "tcp" => tcp(&addr(rest)?, timeout),
        "dns" => dns(rest),
        "stun" => {
            // USERNAME is `<node ufrag>:<client ufrag>`: the password is the last field.
            let mut parts = rest.splitn(3, ':');
            let (host, port, credentials) = (parts.next(), parts.next(), parts.next());
            match (host, port, credentials.and_then(|c| c.rsplit_once(':'))) {
                (Some(h), Some(p), Some((user, pass))) => {
                    stun(&addr(&format!("{h}:{p}"))?, user, pass, timeout)
                }
                _ => Err(format!(
                    "stun check needs ADDR:PORT:USERNAME:PASSWORD: {rest}"
                )),
            }
        }
        other => Err(format!("unknown check kind {other}")),
    }
}

fn addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|e| format!("not an address {text}: {e}"))
}

fn tcp(addr: &SocketAddr, timeout: Duration) -> Result<String, String> {
    match TcpStream::connect_timeout(addr, timeout) {
        Ok(_) => Ok(format!("connected to {addr}")),
        Err(e) if e.kind() == ErrorKind::TimedOut => {
            Err(format!("no answer from {addr} in {timeout:?}"))
        }
        Err(e) => Err(format!("{addr}: {e}")),
    }
}

fn dns(name: &str) -> Result<String, String> {
    match (name, 0).to_socket_addrs() {
        Ok(addrs) => {
            let ips: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
            if ips.is_empty() {
                Err(format!("{name} has no address"))
            } else {
                Ok(ips.join(","))
            }
        }
        Err(e) => Err(format!("{name}: {e}")),
    }
}

/// One ICE connectivity check (RFC 8445 section 7.2.2, STUN per RFC 8489), retried three
/// times within `timeout`.
fn stun(
    addr: &SocketAddr,
    username: &str,
    password: &str,
    timeout: Duration,
) -> Result<String, String> {
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind: {e}"))?;
    let mut transaction = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut transaction))
        .map_err(|e| format!("random transaction id: {e}"))?;
    let request = binding_request(&transaction, username, password);
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    for _ in 0..3 {
        socket
            .send_to(&request, addr)
            .map_err(|e| format!("send to {addr}: {e}"))?;
        let wait = (timeout / 3).min(deadline.saturating_duration_since(Instant::now()));
        if wait.is_zero() {
            break;
        }
        socket
            .set_read_timeout(Some(wait))
            .map_err(|e| format!("timeout: {e}"))?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) if n >= 20 && buf[8..20] == transaction => {
                let kind = u16::from_be_bytes([buf[0], buf[1]]);
                return match kind {
                    0x0101 => Ok(format!("binding success from {from}")),
                    0x0111 => Err(format!("binding error response from {from}")),
                    other => Err(format!("unexpected STUN type {other:#06x} from {from}")),
                };
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
    Err(format!("no STUN response from {addr} in {timeout:?}"))
}

fn attribute(message: &mut Vec<u8>, kind: u16, value: &[u8]) {
    message.extend_from_slice(&kind.to_be_bytes());
    message.extend_from_slice(&(value.len() as u16).to_be_bytes());
    message.extend_from_slice(value);
    while !message.len().is_multiple_of(4) {
        message.push(0);
    }
}

fn set_length(message: &mut [u8], body: usize) {
    message[2..4].copy_from_slice(&(body as u16).to_be_bytes());
}

fn binding_request(transaction: &[u8; 12], username: &str, password: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(&0x0001u16.to_be_bytes());
    m.extend_from_slice(&0u16.to_be_bytes());
    m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m.extend_from_slice(transaction);
    attribute(&mut m, 0x0006, username.as_bytes()); // USERNAME
    attribute(&mut m, 0x0024, &0x6e00_01ffu32.to_be_bytes()); // PRIORITY
    attribute(&mut m, 0x802A, &0x5341_4e43_5455_4d31u64.to_be_bytes()); // ICE-CONTROLLING
    // MESSAGE-INTEGRITY covers the message with a length that already counts it.
    let body = m.len() - 20 + 24;
    set_length(&mut m, body);
    let mut mac =
        Hmac::<Sha1>::new_from_slice(password.as_bytes()).expect("HMAC takes any key length");
    mac.update(&m);
    let digest = mac.finalize().into_bytes();
    attribute(&mut m, 0x0008, &digest);
    // FINGERPRINT likewise.
    let body = m.len() - 20 + 8;
    set_length(&mut m, body);
    let crc = crc32fast::hash(&m) ^ 0x5354_554e;
    attribute(&mut m, 0x8028, &crc.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_request_has_integrity_then_fingerprint_and_a_correct_length() {
        let m = binding_request(&[7; 12], "abcd:efgh", "secret-password-of-the-node");
        let declared = u16::from_be_bytes([m[2], m[3]]) as usize;
        assert_eq!(declared, m.len() - 20);
        // The last attribute is FINGERPRINT (8 bytes), before it MESSAGE-INTEGRITY (24).
        assert_eq!(&m[m.len() - 8..m.len() - 6], &0x8028u16.to_be_bytes());
        assert_eq!(&m[m.len() - 32..m.len() - 30], &0x0008u16.to_be_bytes());
        let crc = crc32fast::hash(&m[..m.len() - 8]) ^ 0x5354_554e;
        assert_eq!(&m[m.len() - 4..], &crc.to_be_bytes());
    }

    #[test]
    fn the_stun_username_keeps_its_colon() {
        // A closed port on loopback: the check runs (no parse error) and finds nothing.
        let found = run(
            "stun:127.0.0.1:9:node:client:password",
            Duration::from_millis(30),
        );
        assert!(
            found
                .expect_err("nothing answers")
                .starts_with("no STUN response")
        );
        assert!(run("stun:127.0.0.1:9:nocolon", Duration::from_millis(30)).is_err());
    }

    #[test]
    fn unknown_checks_are_reported_not_run() {
        assert!(run("ping:10.0.0.1", Duration::from_millis(10)).is_err());
        assert!(run("tcp:not-an-address", Duration::from_millis(10)).is_err());
    }
}
