//! `sanctum-media-node serve`: the node as the operator's Deployment runs it, configured
//! from its environment; logs (and, with an audit bucket, the session trail), the server,
//! and a drain on SIGTERM.

use sanctum_api::env;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use sanctum_audit::store::AuditStore;
use sanctum_telemetry::LogFormat;
use tracing::Level;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;

use super::tools::StoreArgs;
use crate::audit;
use crate::keys::{KeyConfig, Provider, TenantKeySource};
use crate::metrics::Metrics;
use crate::placement::{Peers, PlacementConfig};
use crate::server::{self, ServeConfig, StorageConfig, Tls};
use crate::session_log;
use crate::state::Limits;
use crate::turn::TurnConfig;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Tenant this node serves: the join tokens' audience and the key's encryption context.
    #[arg(long, env = env::TENANT)]
    tenant: String,
    /// The tenant's uid (VideoTenant `metadata.uid`): part of the KMS encryption context.
    #[arg(long, env = env::TENANT_UID)]
    tenant_uid: Option<String>,
    /// Region label of this node (informational).
    #[arg(long, env = env::REGION)]
    region: Option<String>,
    /// WHIP/WHEP listen address (HTTPS unless --insecure-http).
    #[arg(long, env = env::SIGNALING_ADDR, default_value = "0.0.0.0:8443")]
    signaling_addr: SocketAddr,
    /// UDP address for all WebRTC media (one socket, demultiplexed per session).
    #[arg(long, env = env::MEDIA_UDP_ADDR, default_value = "0.0.0.0:10000")]
    media_udp_addr: SocketAddr,
    /// Address peers send media to (ICE host candidate); port 0 means the bound port.
    #[arg(long, env = env::MEDIA_ADVERTISE_ADDR)]
    media_advertise_addr: Option<SocketAddr>,
    /// TCP address of the ICE-TCP passive candidate, for clients whose networks refuse UDP
    /// (RFC 6544); unset, the node offers UDP only.
    #[arg(long, env = env::MEDIA_TCP_ADDR)]
    media_tcp_addr: Option<SocketAddr>,
    /// Address peers reach the ICE-TCP listener at; default: the advertised media IP with
    /// the bound TCP port; port 0 means the bound port.
    #[arg(long, env = env::MEDIA_TCP_ADVERTISE_ADDR, requires = "media_tcp_addr")]
    media_tcp_advertise_addr: Option<SocketAddr>,
    /// TURN URIs handed to clients with their answer (`turn:host:3478?transport=tcp`,
    /// `turns:...`), for networks that reach neither UDP nor ICE-TCP.
    #[arg(long, env = env::TURN_URLS, value_delimiter = ',', requires = "turn_secret_file")]
    turn_url: Vec<String>,
    /// File with the secret shared with the TURN service (coturn `static-auth-secret`).
    #[arg(long, env = env::TURN_SECRET_FILE, requires = "turn_url")]
    turn_secret_file: Option<PathBuf>,
    /// Lifetime of a TURN credential; default: the longest session, so a relayed call can
    /// refresh its allocation until the node would end it anyway.
    #[arg(long, env = "SANCTUM_TURN_CREDENTIAL_TTL_SECONDS")]
    turn_credential_ttl_seconds: Option<u64>,
    /// Pod IP, used as the advertised media address when none is set.
    #[arg(long, env = env::POD_IP)]
    pod_ip: Option<IpAddr>,
    /// Plain-HTTP address of /healthz, /readyz and /metrics.
    #[arg(long, env = env::METRICS_ADDR, default_value = "0.0.0.0:9090")]
    metrics_addr: SocketAddr,
    /// TLS certificate chain (PEM) for signaling; reloaded when the file changes.
    #[arg(
        long,
        env = env::TLS_CERT_FILE,
        required_unless_present = "insecure_http"
    )]
    tls_cert_file: Option<PathBuf>,
    /// TLS private key (PEM) for signaling.
    #[arg(
        long,
        env = env::TLS_KEY_FILE,
        required_unless_present = "insecure_http"
    )]
    tls_key_file: Option<PathBuf>,
    /// Serve signaling over plain HTTP. Only for local tests: tokens would cross in clear.
    #[arg(long, env = "SANCTUM_INSECURE_HTTP", default_value_t = false)]
    insecure_http: bool,
    /// End sessions with no media and no signaling for this many seconds.
    #[arg(long, env = env::IDLE_TIMEOUT_SECONDS, default_value_t = 300)]
    idle_timeout_seconds: u64,
    /// End sessions after this many minutes.
    #[arg(long, env = env::MAX_SESSION_MINUTES, default_value_t = 240)]
    max_session_minutes: u64,
    /// Refuse join tokens whose lifetime (exp - iat) exceeds this many seconds: a token
    /// only opens a session, which then lives on its own, so minutes are enough.
    #[arg(
        long,
        env = "SANCTUM_MAX_TOKEN_LIFETIME_SECONDS",
        default_value_t = 600
    )]
    max_token_lifetime_seconds: u64,
    /// DNS name of the region's headless Service (every media node of the region): rooms
    /// are placed across them and requests forwarded to a room's node.
    #[arg(long, env = env::PEERS_DNS, conflicts_with = "peers")]
    peers_dns: Option<String>,
    /// The region's nodes as a fixed list of signaling addresses, instead of DNS.
    #[arg(long, env = "SANCTUM_PEERS", value_delimiter = ',')]
    peers: Vec<SocketAddr>,
    /// Most sessions on this node; beyond, offers get 503 and go to another node.
    #[arg(long, env = "SANCTUM_MAX_SESSIONS", default_value_t = 500)]
    max_sessions: usize,
    /// Most sessions in one room; beyond, offers get 503.
    #[arg(long, env = "SANCTUM_MAX_ROOM_SESSIONS", default_value_t = 50)]
    max_room_sessions: usize,
    /// Most live sessions opened with one token; beyond, offers get 429.
    #[arg(long, env = "SANCTUM_MAX_TOKEN_SESSIONS", default_value_t = 4)]
    max_token_sessions: usize,
    /// Join-token public key (SPKI PEM) the operator mounts.
    #[arg(
        long,
        env = env::JOIN_TOKEN_PUBLIC_KEY,
        default_value = "/etc/sanctum/join-token/public.pem"
    )]
    join_token_public_key: PathBuf,
    /// Service that unwraps the tenant data key.
    #[arg(long, env = env::KEY_PROVIDER)]
    key_provider: Provider,
    /// The wrapped tenant data key the operator mounts (one version file).
    #[arg(long, env = env::TENANT_KEY_FILE, required_unless_present = "tenant_key_dir", conflicts_with = "tenant_key_dir")]
    tenant_key_file: Option<PathBuf>,
    /// Directory of wrapped tenant key versions (`v1`, `v2`, ...: the mounted Secret): the
    /// newest is used, and a newer one is picked up without a restart.
    #[arg(long, env = env::TENANT_KEY_DIR)]
    tenant_key_dir: Option<PathBuf>,
    /// Version of the mounted tenant key (recorded with every recording's data key).
    #[arg(long, env = env::TENANT_KEY_VERSION, default_value_t = 1)]
    tenant_key_version: i32,
    /// KMS key ARN of the tenant: SSE-KMS key of recording objects (`local`: SSE-S3).
    #[arg(long, env = env::KMS_KEY_ARN)]
    kms_key_arn: Option<String>,
    /// The operator's control public key (SPKI PEM); without it the control API is off.
    #[arg(long, env = env::CONTROL_PUBLIC_KEY)]
    control_public_key: Option<PathBuf>,
    /// Listen address of the control API (mutual TLS, separate from signaling).
    #[arg(long, env = env::CONTROL_ADDR, requires = "control_tls_dir")]
    control_addr: Option<SocketAddr>,
    /// Directory with the control API's `ca.crt` (the tenant's control CA), `tls.crt` and
    /// `tls.key` (this node's certificate), as the operator's Secret `media-control-tls` holds.
    #[arg(long, env = env::CONTROL_TLS_DIR)]
    control_tls_dir: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    /// Web origins allowed to call signaling from a browser (comma-separated).
    #[arg(long, env = env::CORS_ORIGINS, value_delimiter = ',')]
    cors_origins: Vec<String>,
    /// On SIGTERM, wait this long for sessions to end before ending them.
    #[arg(long, env = "SANCTUM_DRAIN_SECONDS", default_value_t = 30)]
    drain_seconds: u64,
    /// Log format.
    #[arg(long, env = "SANCTUM_LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
    /// Audit bucket (Object Lock): the session log is also written there, as this node's
    /// hash chain beside the operator's. Without it the session log is only logged.
    #[arg(long, env = env::AUDIT_BUCKET)]
    audit_bucket: Option<String>,
    /// This node's name in the audit trail (the pod name); names its chain.
    #[arg(long, env = env::POD_NAME, default_value = "media-node")]
    node_name: String,
    /// Milliseconds between writes of queued session log records.
    #[arg(long, env = "SANCTUM_AUDIT_FLUSH_MS", default_value_t = 2000)]
    audit_flush_ms: u64,
}

/// Logs as `format`; with `audit`, the session log also feeds the audit trail, whatever
/// the log level (`RUST_LOG` filters only what is printed).
fn init_logs(format: LogFormat, audit: Option<audit::SessionLayer>) {
    let audited = Targets::new()
        .with_target(session_log::SESSION, Level::INFO)
        .with_target(session_log::AUTH, Level::INFO);
    sanctum_telemetry::init_with(format, "info", audit.map(|l| l.with_filter(audited)));
}

pub async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let metrics = Metrics::default();
    let cloud = a.store.cloud.connect_or_refuse_s3().await?;
    let session_trail = match &a.audit_bucket {
        Some(bucket) => {
            let (trail, layer) = audit::SessionTrail::start(
                AuditStore::new(cloud.s3.clone(), bucket),
                &a.tenant,
                &a.node_name,
                metrics.clone(),
                Duration::from_millis(a.audit_flush_ms.max(10)),
            )?;
            init_logs(a.log_format, Some(layer));
            Some(trail)
        }
        None => {
            init_logs(a.log_format, None);
            tracing::warn!("no --audit-bucket: the session log is not written to the audit trail");
            None
        }
    };
    let tls = match (a.insecure_http, a.tls_cert_file, a.tls_key_file) {
        (true, _, _) => Tls::InsecureHttp,
        (false, Some(cert), Some(key)) => Tls::Files { cert, key },
        _ => anyhow::bail!("set --tls-cert-file and --tls-key-file (or --insecure-http for tests)"),
    };
    let advertise_addr = a.media_advertise_addr.or_else(|| {
        a.pod_ip
            .map(|ip| SocketAddr::new(ip, a.media_udp_addr.port()))
    });
    tracing::info!(
        region = a.region.as_deref().unwrap_or(""),
        kms_key = a.kms_key_arn.as_deref().unwrap_or(""),
        "starting"
    );
    let running = server::start(ServeConfig {
        metrics,
        signaling_addr: a.signaling_addr,
        media_addr: a.media_udp_addr,
        advertise_addr,
        media_tcp_addr: a.media_tcp_addr,
        tcp_advertise_addr: a.media_tcp_advertise_addr,
        metrics_addr: a.metrics_addr,
        tls,
        keys: KeyConfig {
            tenant: a.tenant,
            public_key: a.join_token_public_key,
            max_token_lifetime: Duration::from_secs(a.max_token_lifetime_seconds),
            provider: a.key_provider,
            tenant_key: match (a.tenant_key_dir, a.tenant_key_file) {
                (Some(dir), _) => TenantKeySource::Dir(dir),
                (None, Some(path)) => TenantKeySource::File {
                    path,
                    version: a.tenant_key_version,
                },
                (None, None) => anyhow::bail!("set --tenant-key-dir or --tenant-key-file"),
            },
            control_public_key: a.control_public_key,
            node_name: a.node_name.clone(),
            local_master_key_file: a.store.local_master_key_file,
            tenant_uid: a.tenant_uid,
        },
        idle_timeout: Duration::from_secs(a.idle_timeout_seconds),
        max_session: Duration::from_secs(a.max_session_minutes * 60),
        cors_origins: a.cors_origins,
        drain: Duration::from_secs(a.drain_seconds),
        storage: StorageConfig {
            kms_key_id: a.kms_key_arn.clone().filter(|arn| arn != "local"),
        },
        cloud,
        placement: match (a.peers_dns, a.peers.is_empty()) {
            (Some(name), _) => Some(PlacementConfig {
                peers: Peers::Dns {
                    name,
                    port: a.signaling_addr.port(),
                },
                me: a.pod_ip,
            }),
            (None, false) => Some(PlacementConfig {
                peers: Peers::Static(a.peers),
                me: a.pod_ip,
            }),
            (None, true) => None,
        },
        limits: Limits {
            node: a.max_sessions,
            room: a.max_room_sessions,
            token: a.max_token_sessions,
        },
        turn: a.turn_secret_file.map(|secret_file| TurnConfig {
            urls: a.turn_url,
            secret_file,
            ttl: Duration::from_secs(
                a.turn_credential_ttl_seconds
                    .unwrap_or(a.max_session_minutes * 60),
            ),
        }),
        control: match (a.control_addr, a.control_tls_dir) {
            (Some(addr), Some(tls_dir)) => Some(server::ControlListener { addr, tls_dir }),
            _ => None,
        },
    })
    .await?;
    wait_for_signal().await?;
    running.shutdown().await;
    if let Some(trail) = session_trail {
        trail.close(Duration::from_secs(10)).await;
    }
    Ok(())
}

pub async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
