//! Forwarding benchmark: one publisher to N subscribers through a real media-node process
//! over loopback with DTLS-SRTP. Prints packets forwarded per second of media-node CPU
//! time, publisher-to-subscriber latency percentiles and memory per peer, and writes
//! `target/bench/media-forwarding.json`.
//!
//! `cargo bench -p sanctum-media-node --bench forwarding [-- N1,N2,... [SECONDS]]`
//!
//! The node is its own process so its CPU time (from /proc) is its own; the clients run
//! in this process. Figures vary with machine load: compare runs from the same machine.
//!
//! Baseline, measured in the same run: a plain UDP relay process (one socket, the copies
//! of each datagram sent with one `sendmmsg` as the node sends a turn's packets, no SRTP,
//! no RTP parsing) fed the same packet rate and mean packet size as
//! the node received, with the same fan-out. The ratio node/relay is the cost of WebRTC.

mod report;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sanctum_media_client::{Kind, Options, Session, Transport};

const TENANT: &str = "bench";
const ROOM: &str = "room-bench";
const FPS: u32 = 30;
const FRAME_BYTES: usize = 3000;

struct Node {
    child: Child,
    signaling: String,
    metrics: String,
    dir: tempfile::TempDir,
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sanctum-media-node")
}

fn start_node() -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let status = Command::new(bin())
        .args(["keygen", "--tenant", TENANT, "--dir"])
        .arg(d)
        .stdout(Stdio::null())
        .status()
        .expect("keygen");
    assert!(status.success());
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--tenant",
            TENANT,
            "--signaling-addr",
            "127.0.0.1:0",
            "--media-udp-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--insecure-http",
            "--key-provider",
            "local",
            "--idle-timeout-seconds",
            "600",
        ])
        .arg("--tenant-key-file")
        .arg(d.join("tenant-key"))
        .arg("--local-master-key-file")
        .arg(d.join("master.key"))
        .arg("--join-token-public-key")
        .arg(d.join("public.pem"))
        .env("RUST_LOG", "warn,sanctum=info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("media node");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (signaling, metrics) = loop {
        let line = lines.next().expect("node output").expect("line");
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["message"] == "media node started" {
            break (
                v["signaling_addr"].as_str().expect("addr").to_string(),
                v["metrics_addr"].as_str().expect("addr").to_string(),
            );
        }
    };
    // Keep draining the node's output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Node {
        child,
        signaling,
        metrics,
        dir,
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = stat.rsplit(')').next().expect("fields");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb * 1024.0)
        .unwrap_or(0.0)
}

async fn metric(http: &reqwest::Client, addr: &str, prefix: &str) -> f64 {
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn token(dir: &Path, user: &str, role: &str) -> String {
    let out = Command::new(bin())
        .args([
            "mint-token",
            "--tenant",
            TENANT,
            "--room",
            ROOM,
            "--user",
            user,
        ])
        .args(["--role", role, "--ttl-seconds", "3600", "--key"])
        .arg(dir.join("private.pem"))
        .output()
        .expect("mint");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Row {
    subscribers: usize,
    bytes_out: f64,
    packets_in: f64,
    seconds: f64,
    packets_out: f64,
    node_cpu: f64,
    per_core: f64,
    p50: Duration,
    p99: Duration,
    node_p50_us: f64,
    rss_per_peer: f64,
    delivered: f64,
}

async fn run(n: usize, seconds: u64) -> Row {
    let node = start_node();
    let pid = node.child.id();
    let http = reqwest::Client::new();
    let base = format!("http://{}", node.signaling);
    let opts = |token: String| Options {
        base: base.clone(),
        room: ROOM.into(),
        token,
        layer: None,
        local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        fps: FPS,
        frame_bytes: FRAME_BYTES,
        video_slots: 1,
        transport: Transport::Udp,
    };
    for _ in 0..100 {
        let ok = http
            .get(format!("http://{}/readyz", node.metrics))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if ok {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_idle = rss_bytes(pid);
    let mut subs: Vec<Session> = Vec::new();
    for i in 0..n {
        let t = token(node.dir.path(), &format!("u-sub-{i}"), "observer");
        subs.push(
            sanctum_media_client::connect(&http, Kind::Subscribe, &opts(t))
                .await
                .expect("subscribe"),
        );
    }
    let t = token(node.dir.path(), "u-pub", "host");
    let publisher = sanctum_media_client::connect(&http, Kind::Publish, &opts(t))
        .await
        .expect("publish");
    // Warm up: everyone connected and receiving.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !subs.iter().all(|s| s.stats().frames.len() > 10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent_before = publisher.stats().video_sent;
    let received_before: Vec<usize> = subs.iter().map(|s| s.stats().latencies.len()).collect();
    let out_before = metric(
        &http,
        &node.metrics,
        "sanctum_media_packets_total{direction=\"out\"}",
    )
    .await;
    let bytes_before = metric(
        &http,
        &node.metrics,
        "sanctum_media_bytes_total{direction=\"out\"}",
    )
    .await;
    let in_before = metric(
        &http,
        &node.metrics,
        "sanctum_media_packets_total{direction=\"in\"}",
    )
    .await;
    let cpu_before = cpu_seconds(pid);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    let out = metric(
        &http,
        &node.metrics,
        "sanctum_media_packets_total{direction=\"out\"}",
    )
    .await
        - out_before;
    let bytes_out = metric(
        &http,
        &node.metrics,
        "sanctum_media_bytes_total{direction=\"out\"}",
    )
    .await
        - bytes_before;
    let packets_in = metric(
        &http,
        &node.metrics,
        "sanctum_media_packets_total{direction=\"in\"}",
    )
    .await
        - in_before;
    let rss = rss_bytes(pid);
    let sent = publisher.stats().video_sent - sent_before;
    let mut latencies = Vec::new();
    let mut received = 0usize;
    for (s, before) in subs.iter().zip(received_before) {
        let l = s.stats().latencies;
        received += l.len().saturating_sub(before);
        latencies.extend_from_slice(&l[before.min(l.len())..]);
    }
    latencies.sort();
    let sum = metric(
        &http,
        &node.metrics,
        "sanctum_media_forward_latency_seconds_sum",
    )
    .await;
    let count = metric(
        &http,
        &node.metrics,
        "sanctum_media_forward_latency_seconds_count",
    )
    .await;
    let _ = publisher.abandon().await;
    for s in subs {
        let _ = s.abandon().await;
    }
    let mut child = node.child;
    let _ = child.kill();
    let _ = child.wait();
    Row {
        subscribers: n,
        bytes_out,
        packets_in,
        seconds: elapsed,
        packets_out: out,
        node_cpu: cpu,
        per_core: if cpu > 0.0 { out / cpu } else { 0.0 },
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        node_p50_us: if count > 0.0 { sum / count * 1e6 } else { 0.0 },
        rss_per_peer: (rss - rss_idle) / (n as f64 + 1.0),
        delivered: received as f64 / (sent as f64 * n as f64).max(1.0),
    }
}

/// Relay mode (this binary re-executed): forward every datagram to each target, forever.
fn relay_main(targets: &str) -> ! {
    let targets: Vec<std::net::SocketAddr> = targets
        .split(',')
        .map(|t| t.parse().expect("target address"))
        .collect();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("relay socket");
    println!("{}", socket.local_addr().expect("addr"));
    let mut buf = [0u8; 2048];
    loop {
        let Ok((n, _)) = socket.recv_from(&mut buf) else {
            continue;
        };
        // The node's socket strategy: one `sendmmsg` for the copies of a datagram.
        let copies: Vec<(&[u8], std::net::SocketAddr)> =
            targets.iter().map(|t| (&buf[..n], *t)).collect();
        let mut next = 0;
        while next < copies.len() {
            match sanctum_media_node::udp::send_batch(&socket, &copies[next..]) {
                Ok(sent) => next += sent,
                Err(_) => next += 1,
            }
        }
    }
}

struct RelayRow {
    per_core: f64,
    packets_out: f64,
    cpu: f64,
    p50: Duration,
    p99: Duration,
}

/// The plain UDP relay at `rate` datagrams/s of `size` bytes to `n` receivers.
async fn run_relay(n: usize, seconds: u64, rate: f64, size: usize) -> RelayRow {
    let mut receivers = Vec::new();
    let mut targets = Vec::new();
    for _ in 0..n {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("receiver");
        targets.push(s.local_addr().expect("addr").to_string());
        receivers.push(s);
    }
    let mut child = Command::new(std::env::current_exe().expect("bench binary"))
        .env("SANCTUM_BENCH_RELAY_TARGETS", targets.join(","))
        .stdout(Stdio::piped())
        .spawn()
        .expect("relay");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("relay address");
    let relay: std::net::SocketAddr = line.trim().parse().expect("relay address");
    let epoch = Instant::now();
    let stop = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for r in receivers {
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let mut lat = Vec::new();
            while let Ok(Ok((len, _))) = tokio::time::timeout_at(
                (stop + Duration::from_millis(500)).into(),
                r.recv_from(&mut buf),
            )
            .await
            {
                if len >= 8 {
                    let sent = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
                    let now = epoch.elapsed().as_nanos() as u64;
                    lat.push(Duration::from_nanos(now.saturating_sub(sent)));
                }
            }
            lat
        }));
    }
    let pid = child.id();
    let cpu_before = cpu_seconds(pid);
    let sender = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("sender");
    let gap = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut next = Instant::now();
    let mut payload = vec![0u8; size.max(8)];
    while Instant::now() < stop {
        let now = epoch.elapsed().as_nanos() as u64;
        payload[..8].copy_from_slice(&now.to_be_bytes());
        let _ = sender.send_to(&payload, relay).await;
        next += gap;
        tokio::time::sleep_until(next.into()).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let cpu = cpu_seconds(pid) - cpu_before;
    let _ = child.kill();
    let _ = child.wait();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("receiver"));
    }
    latencies.sort();
    let packets_out = latencies.len() as f64;
    RelayRow {
        per_core: if cpu > 0.0 { packets_out / cpu } else { 0.0 },
        packets_out,
        cpu,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}

fn main() {
    if let Ok(targets) = std::env::var("SANCTUM_BENCH_RELAY_TARGETS") {
        relay_main(&targets);
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench());
}

async fn bench() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let ns: Vec<usize> = args
        .first()
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10, 50]);
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let mut rows = Vec::new();
    for n in ns {
        eprintln!("running 1 publisher -> {n} subscribers for {seconds}s");
        let row = run(n, seconds).await;
        // The publisher's rate to each subscriber: what the node fans out.
        let rate = row.packets_out / row.seconds / n as f64;
        let size = (row.bytes_out / row.packets_out.max(1.0)) as usize;
        eprintln!("baseline: plain UDP relay, {rate:.0} datagrams/s of {size} bytes to {n}");
        let relay = run_relay(n, seconds, rate, size).await;
        rows.push((row, relay));
    }
    println!(
        "| subscribers | packets out/s | node packets out per CPU-second | relay packets out per CPU-second | node/relay | e2e p50 | e2e p99 | relay p50 | relay p99 | node hand-off mean | RSS per peer | delivered |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut json = Vec::new();
    for (r, b) in &rows {
        let ratio = if b.per_core > 0.0 {
            r.per_core / b.per_core
        } else {
            0.0
        };
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.3} | {:.2} ms | {:.2} ms | {:.3} ms | {:.3} ms | {:.1} µs | {:.0} KiB | {:.1}% |",
            r.subscribers,
            r.packets_out / r.seconds,
            r.per_core,
            b.per_core,
            ratio,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            b.p50.as_secs_f64() * 1e3,
            b.p99.as_secs_f64() * 1e3,
            r.node_p50_us,
            r.rss_per_peer / 1024.0,
            r.delivered * 100.0
        );
        json.push(serde_json::json!({
            "subscribers": r.subscribers,
            "seconds": r.seconds,
            "packets_out_per_second": r.packets_out / r.seconds,
            "packets_in_per_second": r.packets_in / r.seconds,
            "node_cpu_seconds": r.node_cpu,
            "packets_out_per_cpu_second": r.per_core,
            "latency_p50_ms": r.p50.as_secs_f64() * 1e3,
            "latency_p99_ms": r.p99.as_secs_f64() * 1e3,
            "node_handoff_mean_us": r.node_p50_us,
            "rss_bytes_per_peer": r.rss_per_peer,
            "delivered_ratio": r.delivered,
            "relay": {
                "packets_out": b.packets_out,
                "cpu_seconds": b.cpu,
                "packets_out_per_cpu_second": b.per_core,
                "latency_p50_ms": b.p50.as_secs_f64() * 1e3,
                "latency_p99_ms": b.p99.as_secs_f64() * 1e3,
            },
            "node_over_relay_per_core": ratio,
        }));
    }
    report::write_json(
        "media-forwarding.json",
        &serde_json::json!({
            "publisher": { "fps": FPS, "frame_bytes": FRAME_BYTES, "audio_packets_per_second": 50 },
            "rows": json,
        }),
    );
}
