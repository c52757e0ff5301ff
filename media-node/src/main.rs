//! `sanctum-media-node`: `serve` runs the node; `mint-token` and `keygen` serve tests and
//! local development.

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use sanctum_audit::store::AuditStore;
use sanctum_media_node::audit;
use sanctum_media_node::decrypt::{self, Source};
use sanctum_media_node::keys::{KeyConfig, Provider, Unwrapper};
use sanctum_media_node::metrics::Metrics;
use sanctum_media_node::server::{self, ServeConfig, StorageConfig, Tls};
use sanctum_media_node::token::{self, Grant, RoleClaim};
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Sanctum media node: WebRTC SFU with WHIP/WHEP signaling and signed join tokens.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the media node (configured from the environment the operator's Deployment sets).
    Serve(Box<ServeArgs>),
    /// Print a join token signed with a tenant's private key (tests, local use).
    MintToken(MintArgs),
    /// Write a join-token key pair, a local master key and a wrapped tenant key (local use).
    Keygen(KeygenArgs),
    /// Read a sealed recording back to WebM, verifying every chunk.
    Decrypt(Box<DecryptArgs>),
}

#[derive(clap::Args)]
struct DecryptArgs {
    /// Sealed recording on disk (instead of --bucket/--key).
    #[arg(long, conflicts_with_all = ["bucket", "key"], required_unless_present = "bucket")]
    input: Option<PathBuf>,
    /// Bucket of the recording.
    #[arg(long, requires = "key")]
    bucket: Option<String>,
    /// Object key of the recording.
    #[arg(long, requires = "bucket")]
    key: Option<String>,
    /// Object version (default: latest).
    #[arg(long)]
    version_id: Option<String>,
    /// Where to write the WebM (created only if the whole recording verifies).
    #[arg(long)]
    output: PathBuf,
    /// Tenant the recording belongs to.
    #[arg(long)]
    tenant: String,
    /// The tenant's uid (VideoTenant `metadata.uid`): part of the KMS encryption context.
    #[arg(long)]
    tenant_uid: Option<String>,
    /// Directory with the wrapped tenant key versions `v1`, `v2`, ... (the `tenant-data-key` Secret's data).
    #[arg(long)]
    tenant_key_dir: PathBuf,
    /// Service that unwraps the tenant key.
    #[arg(long, value_enum)]
    key_provider: Provider,
    #[command(flatten)]
    store: StoreArgs,
}

/// Where keys are unwrapped and objects stored; shared by `serve` and `decrypt`.
#[derive(clap::Args)]
struct StoreArgs {
    /// Master key file of the local provider.
    #[arg(long, env = "SANCTUM_LOCAL_MASTER_KEY_FILE")]
    local_master_key_file: Option<PathBuf>,
    #[command(flatten)]
    cloud: sanctum_cloud::CloudArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Tenant this node serves: the join tokens' audience and the key's encryption context.
    #[arg(long, env = "SANCTUM_TENANT")]
    tenant: String,
    /// The tenant's uid (VideoTenant `metadata.uid`): part of the KMS encryption context.
    #[arg(long, env = "SANCTUM_TENANT_UID")]
    tenant_uid: Option<String>,
    /// Region label of this node (informational).
    #[arg(long, env = "SANCTUM_REGION")]
    region: Option<String>,
    /// WHIP/WHEP listen address (HTTPS unless --insecure-http).
    #[arg(long, env = "SANCTUM_SIGNALING_ADDR", default_value = "0.0.0.0:8443")]
    signaling_addr: SocketAddr,
    /// UDP address for all WebRTC media (one socket, demultiplexed per session).
    #[arg(long, env = "SANCTUM_MEDIA_UDP_ADDR", default_value = "0.0.0.0:10000")]
    media_udp_addr: SocketAddr,
    /// Address peers send media to (ICE host candidate); port 0 means the bound port.
    #[arg(long, env = "SANCTUM_MEDIA_ADVERTISE_ADDR")]
    media_advertise_addr: Option<SocketAddr>,
    /// Pod IP, used as the advertised media address when none is set.
    #[arg(long, env = "POD_IP")]
    pod_ip: Option<IpAddr>,
    /// Plain-HTTP address of /healthz, /readyz and /metrics.
    #[arg(long, env = "SANCTUM_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    metrics_addr: SocketAddr,
    /// TLS certificate chain (PEM) for signaling; reloaded when the file changes.
    #[arg(
        long,
        env = "SANCTUM_TLS_CERT_FILE",
        required_unless_present = "insecure_http"
    )]
    tls_cert_file: Option<PathBuf>,
    /// TLS private key (PEM) for signaling.
    #[arg(
        long,
        env = "SANCTUM_TLS_KEY_FILE",
        required_unless_present = "insecure_http"
    )]
    tls_key_file: Option<PathBuf>,
    /// Serve signaling over plain HTTP. Only for local tests: tokens would cross in clear.
    #[arg(long, env = "SANCTUM_INSECURE_HTTP", default_value_t = false)]
    insecure_http: bool,
    /// End sessions with no media and no signaling for this many seconds.
    #[arg(long, env = "SANCTUM_IDLE_TIMEOUT_SECONDS", default_value_t = 300)]
    idle_timeout_seconds: u64,
    /// End sessions after this many minutes.
    #[arg(long, env = "SANCTUM_MAX_SESSION_MINUTES", default_value_t = 240)]
    max_session_minutes: u64,
    /// Refuse join tokens whose lifetime (exp - iat) exceeds this many seconds.
    #[arg(
        long,
        env = "SANCTUM_MAX_TOKEN_LIFETIME_SECONDS",
        default_value_t = 3600
    )]
    max_token_lifetime_seconds: u64,
    /// Join-token public key (SPKI PEM) the operator mounts.
    #[arg(
        long,
        env = "SANCTUM_JOIN_TOKEN_PUBLIC_KEY",
        default_value = "/etc/sanctum/join-token/public.pem"
    )]
    join_token_public_key: PathBuf,
    /// Service that unwraps the tenant data key.
    #[arg(long, env = "SANCTUM_KEY_PROVIDER", value_enum)]
    key_provider: Provider,
    /// The wrapped tenant data key the operator mounts (one version file).
    #[arg(long, env = "SANCTUM_TENANT_KEY_FILE")]
    tenant_key_file: PathBuf,
    /// Version of the mounted tenant key (recorded with every recording's data key).
    #[arg(long, env = "SANCTUM_TENANT_KEY_VERSION", default_value_t = 1)]
    tenant_key_version: i32,
    /// KMS key ARN of the tenant: SSE-KMS key of recording objects (`local`: SSE-S3).
    #[arg(long, env = "SANCTUM_KMS_KEY_ARN")]
    kms_key_arn: Option<String>,
    /// The operator's control public key (SPKI PEM); without it the control API is off.
    #[arg(long, env = "SANCTUM_CONTROL_PUBLIC_KEY")]
    control_public_key: Option<PathBuf>,
    /// Listen address of the control API (mutual TLS, separate from signaling).
    #[arg(long, env = "SANCTUM_CONTROL_ADDR", requires = "control_tls_dir")]
    control_addr: Option<SocketAddr>,
    /// Directory with the control API's `ca.crt` (the tenant's control CA), `tls.crt` and
    /// `tls.key` (this node's certificate), as the operator's Secret `media-control-tls` holds.
    #[arg(long, env = "SANCTUM_CONTROL_TLS_DIR")]
    control_tls_dir: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    /// Web origins allowed to call signaling from a browser (comma-separated).
    #[arg(long, env = "SANCTUM_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,
    /// On SIGTERM, wait this long for sessions to end before ending them.
    #[arg(long, env = "SANCTUM_DRAIN_SECONDS", default_value_t = 30)]
    drain_seconds: u64,
    /// Log format.
    #[arg(long, env = "SANCTUM_LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
    /// Audit bucket (Object Lock): the session log is also written there, as this node's
    /// hash chain beside the operator's. Without it the session log is only logged.
    #[arg(long, env = "SANCTUM_AUDIT_BUCKET")]
    audit_bucket: Option<String>,
    /// This node's name in the audit trail (the pod name); names its chain.
    #[arg(long, env = "POD_NAME", default_value = "media-node")]
    node_name: String,
    /// Milliseconds between writes of queued session log records.
    #[arg(long, env = "SANCTUM_AUDIT_FLUSH_MS", default_value_t = 2000)]
    audit_flush_ms: u64,
}

#[derive(clap::Args)]
struct MintArgs {
    /// Tenant's private join-token key (PKCS#8 PEM).
    #[arg(long)]
    key: PathBuf,
    /// Tenant (audience).
    #[arg(long)]
    tenant: String,
    /// Room.
    #[arg(long)]
    room: String,
    /// Opaque user id.
    #[arg(long)]
    user: String,
    /// Role.
    #[arg(long, value_enum, default_value = "participant")]
    role: RoleClaim,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 600)]
    ttl_seconds: u64,
}

#[derive(clap::Args)]
struct KeygenArgs {
    /// Directory to write `private.pem`, `public.pem`, `master.key` and `tenant-key` into.
    #[arg(long)]
    dir: PathBuf,
    /// Tenant the wrapped key is bound to.
    #[arg(long)]
    tenant: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await,
        Command::MintToken(a) => {
            let pem = std::fs::read(&a.key).with_context(|| format!("reading {:?}", a.key))?;
            let grant = Grant {
                tenant: a.tenant,
                room: a.room,
                user: a.user,
                role: a.role,
                ttl: Duration::from_secs(a.ttl_seconds),
            };
            println!(
                "{}",
                token::mint(&pem, &grant).context("signing the token")?
            );
            Ok(())
        }
        Command::Keygen(a) => keygen(&a),
        Command::Decrypt(a) => decrypt(*a).await,
    }
}

fn init_logs(format: LogFormat) {
    init_logs_with(format, None);
}

/// Logs as `format`; with `audit`, the session log also feeds the audit trail, whatever
/// the log level (`RUST_LOG` filters only what is printed).
fn init_logs_with(format: LogFormat, audit: Option<audit::SessionLayer>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let audited = Targets::new()
        .with_target("sanctum::session", Level::INFO)
        .with_target("sanctum::auth", Level::INFO);
    let registry = tracing_subscriber::registry().with(audit.map(|l| l.with_filter(audited)));
    match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_filter(filter),
            )
            .init(),
        LogFormat::Text => registry
            .with(fmt::layer().compact().with_filter(filter))
            .init(),
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let metrics = Metrics::default();
    let cloud = a.store.cloud.connect().await?;
    let session_trail = match &a.audit_bucket {
        Some(bucket) => {
            let (trail, layer) = audit::SessionTrail::start(
                AuditStore::new(cloud.s3.clone(), bucket),
                &a.tenant,
                &a.node_name,
                metrics.clone(),
                Duration::from_millis(a.audit_flush_ms.max(10)),
            )?;
            init_logs_with(a.log_format, Some(layer));
            Some(trail)
        }
        None => {
            init_logs(a.log_format);
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
        metrics_addr: a.metrics_addr,
        tls,
        keys: KeyConfig {
            tenant: a.tenant,
            public_key: a.join_token_public_key,
            max_token_lifetime: Duration::from_secs(a.max_token_lifetime_seconds),
            provider: a.key_provider,
            tenant_key_file: a.tenant_key_file,
            tenant_key_version: a.tenant_key_version,
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

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}

fn keygen(a: &KeygenArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.dir)?;
    let (private, public) = token::generate_keypair()?;
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let path = a.dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {path:?}"))
    };
    write("private.pem", &private)?;
    write("public.pem", &public)?;
    let master = sanctum_keywrap::random_key()?;
    write("master.key", &master)?;
    write(
        "tenant-key",
        &sanctum_keywrap::new_local_data_key(&master, &a.tenant)?,
    )?;
    println!(
        "wrote private.pem, public.pem, master.key and tenant-key to {:?}",
        a.dir
    );
    Ok(())
}

async fn decrypt(a: DecryptArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cloud = a.store.cloud.connect().await?;
    let unwrapper = Unwrapper {
        tenant: a.tenant,
        tenant_uid: a.tenant_uid,
        provider: a.key_provider,
        local_master_key_file: a.store.local_master_key_file.clone(),
        kms: cloud.kms.clone(),
    };
    let source = match (a.input, a.bucket, a.key) {
        (Some(path), _, _) => Source::File(path),
        (None, Some(bucket), Some(key)) => Source::S3 {
            client: cloud.s3.clone(),
            bucket,
            key,
            version_id: a.version_id,
        },
        _ => anyhow::bail!("give --input, or --bucket and --key"),
    };
    let opened = decrypt::decrypt(source, &a.tenant_key_dir, &unwrapper, &a.output).await?;
    println!(
        "verified {} chunks of recording {} (tenant key v{}); wrote {} bytes of {} to {:?}",
        opened.chunks,
        opened.header.recording,
        opened.header.key_version,
        opened.bytes,
        opened.header.content_type,
        a.output
    );
    Ok(())
}
