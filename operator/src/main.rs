//! `sanctum`: the operator binary. `run` starts the controllers; `crds` prints the CRDs.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use http::HeaderValue;
use http::header::USER_AGENT;
use k8s_openapi::api::core::v1::Secret;
use kube::client::ClientBuilder;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use sanctum_cloud::CloudArgs;
use sanctum_operator::audit::store::{AuditStore, DEFAULT_RETENTION_DAYS};
use sanctum_operator::audit::trail::{Trail, Writer};
use sanctum_operator::audit::{self, AuditMeter};
use sanctum_operator::backup;
use sanctum_operator::controller::tenant::build::backup::BackupJobs;
use sanctum_operator::controller::tenant::build::{AwsEnv, MediaNodes, OperatorIdentity};
use sanctum_operator::controller::{self, RunConfig};
use sanctum_operator::crds;
use sanctum_operator::http::{HttpState, serve};
use sanctum_operator::metrics::Metrics;
use sanctum_operator::telemetry::{self, LogFormat};

/// Sanctum: HIPAA-grade video tenants on Kubernetes.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator's controllers.
    Run(Box<RunArgs>),
    /// Copy a tenant's recordings, wrapped keys and audit chain to its backup bucket
    /// (what the tenant's backup CronJob runs).
    Backup(Box<BackupArgs>),
    /// Bring a tenant's recordings and wrapped keys back from a backup, checking every SHA-256.
    Restore(Box<RestoreArgs>),
    /// Check or export a tenant's audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the CRDs and admission policy (or write the files of `crds/` with --write).
    Crds {
        /// Directory to write `<plural>.yaml` files into instead of printing.
        #[arg(long)]
        write: Option<PathBuf>,
        /// Also write the Markdown CRD reference to this file.
        #[arg(long)]
        reference: Option<PathBuf>,
    },
}

/// A key provider as spelled on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ProviderArg {
    /// AWS KMS.
    Aws,
    /// The local master key.
    Local,
}

impl std::fmt::Display for ProviderArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProviderArg::Aws => "aws",
            ProviderArg::Local => "local",
        })
    }
}

/// Which tenant's audit chain, in which bucket.
#[derive(clap::Args)]
struct AuditArgs {
    /// Tenant whose chain to read.
    #[arg(long)]
    tenant: String,
    /// The audit bucket.
    #[arg(long, env = "SANCTUM_AUDIT_BUCKET")]
    bucket: String,
    /// The operator's audit signing keys (SPKI PEM): data `signers.pem` of ConfigMap
    /// `sanctum-audit-signers` in the operator's namespace. The reconcile chain must be
    /// signed by one of them; a media node's chain by the key its first record states.
    #[arg(long)]
    public_keys: PathBuf,
    /// The tenant's anchor, `SEQ:HASH` (its `status.lastAuditRecord`): the chain must hold
    /// that record, so a chain cut short or rewritten behind it is found.
    #[arg(long, value_parser = parse_anchor)]
    anchor: Option<audit::Head>,
    #[command(flatten)]
    cloud: CloudArgs,
}

#[derive(clap::Args)]
struct BackupArgs {
    /// Tenant to back up.
    #[arg(long)]
    tenant: String,
    /// Namespace holding the tenant's `tenant-data-key` Secret (wrapped keys), read through
    /// the API.
    #[arg(
        long,
        required_unless_present = "keys_dir",
        conflicts_with = "keys_dir"
    )]
    namespace: Option<String>,
    /// Directory where the `tenant-data-key` Secret is mounted (what the CronJob uses, so
    /// its pod needs no API access).
    #[arg(long)]
    keys_dir: Option<PathBuf>,
    /// File to write the result to as one line of JSON, or the error on failure: the
    /// container's termination message, which the operator reads into the tenant's status.
    #[arg(long)]
    result_file: Option<PathBuf>,
    /// The tenant's recordings bucket.
    #[arg(long)]
    source_bucket: String,
    /// Backup bucket.
    #[arg(long)]
    destination_bucket: String,
    /// Region of the backup bucket (default: `--aws-region`).
    #[arg(long)]
    destination_region: Option<String>,
    /// Backups to keep.
    #[arg(long, default_value_t = 30)]
    keep: usize,
    /// Audit bucket whose chain of this tenant is backed up too.
    #[arg(long, env = "SANCTUM_AUDIT_BUCKET")]
    audit_bucket: Option<String>,
    /// Seconds to wait for a running backup of the same tenant to finish.
    #[arg(long, default_value_t = 0)]
    wait_seconds: u64,
    /// Seconds the backup lock lasts without renewal: how long a crashed run blocks the next.
    #[arg(long, default_value_t = backup::LOCK_SECONDS)]
    lock_seconds: u64,
    #[command(flatten)]
    cloud: CloudArgs,
}

#[derive(clap::Args)]
struct RestoreArgs {
    /// Tenant whose backup to restore.
    #[arg(long)]
    tenant: String,
    /// Backup bucket.
    #[arg(long)]
    backup_bucket: String,
    /// Region of the backup bucket (default: `--aws-region`).
    #[arg(long)]
    backup_region: Option<String>,
    /// Backup id (`YYYYMMDDTHHMMSS.mmmZ`, as `backup` prints it); the newest when omitted.
    #[arg(long)]
    backup: Option<String>,
    /// Bucket to restore the recordings into (new, or emptied), under their original keys.
    #[arg(long)]
    target_bucket: String,
    /// Directory to write the wrapped key versions into (`v1`, `v2`, ...; as `decrypt` reads them).
    #[arg(long)]
    keys_dir: Option<PathBuf>,
    #[command(flatten)]
    cloud: CloudArgs,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk a tenant's chain; exit 1 naming the first changed, missing or reordered record.
    Verify(Box<AuditArgs>),
    /// Print a verified chain's records in a time range as JSON lines, for an auditor.
    Export {
        #[command(flatten)]
        args: Box<AuditArgs>,
        /// Earliest record time (RFC 3339), inclusive.
        #[arg(long)]
        since: Option<jiff::Timestamp>,
        /// Latest record time (RFC 3339), exclusive.
        #[arg(long)]
        until: Option<jiff::Timestamp>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Log format.
    #[arg(long, env = "SANCTUM_LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
    /// Address serving /healthz, /readyz and /metrics.
    #[arg(long, env = "SANCTUM_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Namespace the operator runs in (tenants may not use it).
    #[arg(long, env = "POD_NAMESPACE", default_value = "sanctum-system")]
    namespace: String,
    /// Reconcile only tenants matching this label selector (e.g. `shard=a`).
    #[arg(long, env = "SANCTUM_TENANT_SELECTOR")]
    tenant_selector: Option<String>,
    /// Seconds between re-checks of converged tenants.
    #[arg(long, env = "SANCTUM_RESYNC_SECONDS", default_value_t = 300)]
    resync_seconds: u64,
    #[command(flatten)]
    cloud: CloudArgs,
    /// This replica's name in Events and the leader Lease (normally the pod name).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
    /// Key providers tenants may use (comma-separated `aws`, `local`); a tenant asking for
    /// another is Stalled. Regulated clusters allow only `aws`.
    #[arg(long, env = "SANCTUM_KEY_PROVIDERS", value_delimiter = ',', default_values_t = vec![ProviderArg::Aws, ProviderArg::Local])]
    key_providers: Vec<ProviderArg>,
    /// Reconcile only while holding a Lease in `--namespace`, so replicas can run side by side.
    #[arg(long, env = "SANCTUM_LEADER_ELECTION", default_value_t = false)]
    leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "SANCTUM_LEASE_NAME", default_value = "sanctum-operator")]
    lease_name: String,
    /// Seconds a leader's Lease lasts without renewal before a standby takes over.
    #[arg(long, env = "SANCTUM_LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Pins a media-node host name to an address for control requests, like curl's
    /// `--resolve` (HOST=IP; repeatable): for EndpointSlices of type FQDN without DNS.
    #[arg(long = "resolve", env = "SANCTUM_RESOLVE", value_delimiter = ',')]
    resolve: Vec<String>,
    /// The operator's own ServiceAccount (in `--namespace`); with `--tenant-secrets-role`,
    /// the operator binds itself that ClusterRole in each tenant namespace it makes (the
    /// chart grants no Secret rights cluster-wide).
    #[arg(
        long,
        env = "SANCTUM_SERVICE_ACCOUNT",
        requires = "tenant_secrets_role"
    )]
    service_account: Option<String>,
    /// ClusterRole with the tenant Secrets' rights, bound per tenant namespace.
    #[arg(
        long,
        env = "SANCTUM_TENANT_SECRETS_ROLE",
        requires = "service_account"
    )]
    tenant_secrets_role: Option<String>,
    /// Seconds between re-verifications of a sealed recording's SHA-256 in S3.
    #[arg(
        long,
        env = "SANCTUM_INTEGRITY_CHECK_SECONDS",
        default_value_t = 86_400
    )]
    integrity_check_seconds: u64,
    /// Bucket for the tenants' audit chains, created with Object Lock in compliance mode.
    /// Without it no audit trail is written (a warning says so at start).
    #[arg(long, env = "SANCTUM_AUDIT_BUCKET")]
    audit_bucket: Option<String>,
    /// Days each audit object stays locked (default six years).
    #[arg(long, env = "SANCTUM_AUDIT_RETENTION_DAYS", default_value_t = DEFAULT_RETENTION_DAYS)]
    audit_retention_days: i32,
    /// Milliseconds between writes of queued audit records.
    #[arg(long, env = "SANCTUM_AUDIT_FLUSH_MS", default_value_t = 2000)]
    audit_flush_ms: u64,
    /// Seconds a tenant's audit records may wait for the bucket before a Warning Event
    /// (`AuditShippingDelayed`) on the tenant says so.
    #[arg(long, env = "SANCTUM_AUDIT_LAG_EVENT_SECONDS", default_value_t = 60)]
    audit_lag_event_seconds: u64,
    /// Milliseconds a tenant's reconcile waits for more events before it runs: the
    /// burst of child events a reconcile causes then yields one reconcile, not one each.
    #[arg(long, env = "SANCTUM_RECONCILE_DEBOUNCE_MS", default_value_t = 0)]
    reconcile_debounce_ms: u64,
    /// Tenant reconciles running at once (0 = unbounded); bounds the load a mass change
    /// puts on the API server, KMS and S3.
    #[arg(long, env = "SANCTUM_MAX_CONCURRENT_RECONCILES", default_value_t = 0)]
    max_concurrent_reconciles: u16,
    /// Image tenants' backup CronJobs run (`sanctum backup`): the operator's own image.
    #[arg(long, env = "SANCTUM_BACKUP_IMAGE", default_value = concat!("ghcr.io/sanctum-dev/sanctum-operator:", env!("CARGO_PKG_VERSION")))]
    backup_image: String,
    /// IAM role for backup pods (IRSA annotation on the tenant's `backup` ServiceAccount),
    /// holding only the backup's S3 rights (docs/iam.md).
    #[arg(long, env = "SANCTUM_BACKUP_ROLE_ARN")]
    backup_role_arn: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crds { write, reference } => {
            if let Some(path) = &reference {
                std::fs::write(path, sanctum_operator::reference::markdown())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let Some(dir) = write else {
                if reference.is_none() {
                    print!("{}", crds::to_yaml_stream()?);
                }
                return Ok(());
            };
            for (file, objects) in crds::all() {
                let path = dir.join(file);
                std::fs::write(&path, crds::to_yaml(&objects)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Command::Run(args) => run(*args).await?,
        Command::Audit { command } => audit(command).await?,
        Command::Backup(args) => backup(*args).await?,
        Command::Restore(args) => restore(*args).await?,
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let metrics = Metrics::default();
    let client = client(&metrics).await?;
    let ready = Arc::new(AtomicBool::new(false));
    let http = tokio::spawn(serve(
        args.http_addr,
        HttpState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
    ));
    let leading = if args.leader_election {
        // A standby is healthy and ready: it serves its purpose by waiting. Without this a
        // rolling update, which waits for new pods to be ready, would never finish.
        ready.store(true, Ordering::Relaxed);
        let identity = args
            .instance
            .clone()
            .unwrap_or_else(|| format!("sanctum-{}", std::process::id()));
        Some(
            acquire_leadership(
                &client,
                &args.namespace,
                &args.lease_name,
                &identity,
                args.lease_duration_seconds,
            )
            .await?,
        )
    } else {
        None
    };
    let cloud = args.cloud.connect().await?;
    // Pods are told what this process found: the same store, region and bucket owners.
    let aws_env = AwsEnv {
        endpoint: args.cloud.aws_endpoint.clone(),
        region: args.cloud.aws_region.clone(),
        path_style: args.cloud.s3_path_style,
        owners: cloud.owners.clone(),
    };
    let config = RunConfig {
        operator_namespace: args.namespace,
        tenant_selector: args.tenant_selector,
        resync: Duration::from_secs(args.resync_seconds),
        instance: args.instance.clone(),
        key_providers: args
            .key_providers
            .iter()
            .map(|p| match p {
                ProviderArg::Aws => sanctum_api::KeyProvider::Aws,
                ProviderArg::Local => sanctum_api::KeyProvider::Local,
            })
            .collect(),
        integrity_interval: Duration::from_secs(args.integrity_check_seconds.max(1)),
        debounce: Duration::from_millis(args.reconcile_debounce_ms),
        concurrency: args.max_concurrent_reconciles,
        resolve: args
            .resolve
            .iter()
            .map(|r| {
                let (host, ip) = r
                    .split_once('=')
                    .with_context(|| format!("--resolve {r:?}: expected HOST=IP"))?;
                let ip: std::net::IpAddr = ip
                    .parse()
                    .with_context(|| format!("--resolve {r:?}: {ip:?} is not an IP address"))?;
                Ok((host.to_string(), ip))
            })
            .collect::<anyhow::Result<_>>()?,
        identity: args
            .service_account
            .clone()
            .zip(args.tenant_secrets_role.clone())
            .map(|(service_account, secrets_role)| OperatorIdentity {
                service_account,
                secrets_role,
            }),
        media: MediaNodes {
            audit_bucket: args.audit_bucket.clone(),
            aws: aws_env.clone(),
        },
        backup: BackupJobs {
            image: args.backup_image,
            role_arn: args.backup_role_arn,
            audit_bucket: args.audit_bucket.clone(),
            aws: aws_env,
        },
    };
    let (audit_trail, shipper) = match &args.audit_bucket {
        Some(bucket) => {
            audit::ensure_bucket(&cloud, bucket, args.audit_retention_days)
                .await
                .with_context(|| format!("cannot prepare the audit bucket {bucket}"))?;
            let recorder = Recorder::new(
                client.clone(),
                Reporter {
                    controller: sanctum_operator::CONTROLLER_NAME.to_string(),
                    instance: args.instance.clone(),
                },
            );
            let signer = audit::signer(&client, &config.operator_namespace)
                .await
                .context("cannot read or make the audit signing key")?;
            tracing::info!(key = signer.id(), "audit batches are signed");
            let (heads, moved) = audit::Heads::new();
            let meter = AuditMeter::new(
                metrics.clone(),
                recorder,
                Duration::from_secs(args.audit_lag_event_seconds),
                heads.clone(),
            );
            let (trail, task) = Trail::start(
                AuditStore::new(cloud.s3.clone(), bucket),
                Writer::Operator,
                signer,
                meter,
                Duration::from_millis(args.audit_flush_ms.max(10)),
            );
            (
                controller::Audit {
                    trail,
                    heads,
                    moved: Some(moved),
                },
                Some(task),
            )
        }
        None => {
            tracing::warn!("no --audit-bucket: reconciles are not written to an audit trail");
            (controller::Audit::default(), None)
        }
    };
    let lost = async {
        match leading {
            Some(mut leading) => {
                while leading.changed().await.is_ok() {
                    if !*leading.borrow_and_update() {
                        break;
                    }
                }
                // Keep the receiver until here: dropping it releases the Lease.
                drop(leading);
            }
            None => std::future::pending::<()>().await,
        }
    };
    let result = tokio::select! {
        result = controller::run(client, metrics, ready, config, cloud, audit_trail) => result,
        result = http => Err(anyhow::anyhow!("HTTP endpoint stopped: {:?}", result)),
        () = lost => Err(anyhow::anyhow!("lost the leader Lease; exiting so a fresh start can compete again")),
    };
    // The controllers are gone, and with them every handle: the shipper writes what is
    // queued and ends.
    if let Some(shipper) = shipper
        && tokio::time::timeout(Duration::from_secs(20), shipper)
            .await
            .is_err()
    {
        tracing::warn!("audit records still queued at exit were not written");
    }
    result
}

async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Json);
    let result_file = args.result_file.clone();
    let outcome = run_backup(args).await;
    let line = match &outcome {
        Ok(summary) => summary.to_string(),
        Err(e) => serde_json::json!({ "error": format!("{e:#}") }).to_string(),
    };
    if let Some(path) = result_file {
        // Kubernetes keeps at most 4096 bytes of a termination message: cut at a char
        // boundary below that. A file that cannot be written must not turn a backup that
        // ran into a failure (the Job would run it again), nor hide why one failed.
        let mut end = line.len().min(4000);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        if let Err(error) = std::fs::write(&path, &line[..end]) {
            tracing::warn!(%error, path = %path.display(), "could not write the result file");
        }
    }
    println!("{}", outcome?);
    Ok(())
}

async fn run_backup(args: BackupArgs) -> anyhow::Result<serde_json::Value> {
    let wrapped_keys = match (&args.keys_dir, &args.namespace) {
        (Some(dir), _) => backup::read_key_dir(dir)
            .with_context(|| format!("reading the wrapped tenant keys in {}", dir.display()))?,
        (None, Some(namespace)) => {
            let client = Client::try_default()
                .await
                .context("no Kubernetes configuration found")?;
            let secret = Api::<Secret>::namespaced(client, namespace)
                .get(sanctum_operator::controller::tenant::build::tenant_key::SECRET_NAME)
                .await
                .with_context(|| format!("reading the wrapped tenant keys in {namespace}"))?;
            secret.data.unwrap_or_default()
        }
        (None, None) => anyhow::bail!("--keys-dir or --namespace is required"),
    };
    let source = args.cloud.connect().await?;
    let dest = args
        .cloud
        .connect_in(args.destination_region.as_deref())
        .await?;
    let plan = backup::Plan {
        tenant: args.tenant,
        source_bucket: args.source_bucket,
        audit_bucket: args.audit_bucket,
        destination_bucket: args.destination_bucket,
        wrapped_keys,
        keep: args.keep,
        wait: Duration::from_secs(args.wait_seconds),
        lock_for: Duration::from_secs(args.lock_seconds.max(4)),
        holder: std::env::var("POD_NAME").unwrap_or_else(|_| format!("pid-{}", std::process::id())),
    };
    let manifest = backup::backup(&source, &dest, &plan).await?;
    Ok(serde_json::json!({
        "backup": manifest.id,
        "objects": manifest.objects.len(),
        "audit": manifest.audit.len(),
        "copied": manifest.copied,
        "keyVersions": manifest.wrapped_keys.len(),
    }))
}

async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let source = args.cloud.connect_in(args.backup_region.as_deref()).await?;
    let target = args.cloud.connect().await?;
    let (report, keys) = backup::restore(
        &source,
        &target,
        &args.backup_bucket,
        &args.tenant,
        args.backup.as_deref(),
        &args.target_bucket,
    )
    .await?;
    if let Some(dir) = &args.keys_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (version, wrapped) in &keys {
            let path = dir.join(version);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("writing {} (it must not exist yet)", path.display()))?;
            file.write_all(&wrapped.0)?;
        }
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    anyhow::ensure!(
        report.missing.is_empty() && report.mismatched.is_empty(),
        "restore of {} incomplete: {} missing, {} not matching their checksum",
        report.backup,
        report.missing.len(),
        report.mismatched.len()
    );
    Ok(())
}

fn parse_anchor(text: &str) -> Result<audit::Head, String> {
    let (seq, hash) = text
        .split_once(':')
        .ok_or("expected SEQ:HASH, as in status.lastAuditRecord")?;
    let seq = seq
        .parse()
        .map_err(|_| format!("{seq:?} is not a sequence number"))?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{hash:?} is not a SHA-256 in hex"));
    }
    Ok(audit::Head {
        seq,
        hash: hash.to_ascii_lowercase(),
    })
}

async fn audit(command: AuditCommand) -> anyhow::Result<()> {
    let (args, range) = match command {
        AuditCommand::Verify(args) => (args, None),
        AuditCommand::Export { args, since, until } => (args, Some((since, until))),
    };
    let pem = std::fs::read_to_string(&args.public_keys)
        .with_context(|| format!("reading {}", args.public_keys.display()))?;
    let signers = audit::Trust::from_pems(&pem)
        .with_context(|| format!("{} holds no Ed25519 public key", args.public_keys.display()))?;
    let store = AuditStore::new(args.cloud.connect().await?.s3, &args.bucket);
    let tenant = &args.tenant;
    let gathered = audit::check::gather(&store, tenant).await?;
    let report = audit::check::judge(tenant, &gathered, &signers, args.anchor.as_ref())?;
    let Some((since, until)) = range else {
        for chain in &report.chains {
            println!(
                "audit chain of {tenant} ({}) intact and signed: {} records in {} objects, last record {} ({})",
                chain.name, chain.head.seq, chain.objects, chain.head.seq, chain.head.hash
            );
        }
        if let (Some(after), Some(anchor)) = (report.after_anchor, &args.anchor) {
            println!(
                "anchor {}:{} held; {after} record(s) written after it",
                anchor.seq, anchor.hash
            );
        }
        return Ok(());
    };
    let mut timed = Vec::new();
    for record in report.records {
        let time: jiff::Timestamp = record
            .time
            .parse()
            .with_context(|| format!("record {} has no valid time", record.seq))?;
        if since.is_none_or(|s| time >= s) && until.is_none_or(|u| time < u) {
            timed.push((time, record));
        }
    }
    // One timeline for the auditor; each record's `controller` names its chain.
    timed.sort_by_key(|(time, _)| *time);
    let mut out = std::io::stdout().lock();
    for (_, record) in timed {
        serde_json::to_writer(&mut out, &record)?;
        writeln!(out)?;
    }
    Ok(())
}

/// Waits until this replica holds the leader Lease; the receiver turns false if it is lost.
async fn acquire_leadership(
    client: &Client,
    namespace: &str,
    lease: &str,
    identity: &str,
    duration: u64,
) -> anyhow::Result<tokio::sync::watch::Receiver<bool>> {
    let manager = LeaseManagerBuilder::new(client.clone(), lease)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(duration)
        .with_grace(duration.div_ceil(3).max(1))
        .with_field_manager("sanctum-operator-leader")
        .build()
        .await
        .with_context(|| format!("cannot use Lease {namespace}/{lease}"))?;
    let (mut leading, task) = manager.watch().await;
    tracing::info!(lease, identity, "waiting for the leader Lease");
    while !*leading.borrow_and_update() {
        if leading.changed().await.is_err() {
            let outcome = task.await;
            anyhow::bail!("the Lease manager stopped: {outcome:?}");
        }
    }
    tracing::info!(lease, identity, "leading");
    Ok(leading)
}

/// A client that names itself in audit logs and counts every request it sends.
async fn client(metrics: &Metrics) -> anyhow::Result<Client> {
    let mut config = kube::Config::infer()
        .await
        .context("no Kubernetes configuration found")?;
    let agent = concat!("sanctum-operator/", env!("CARGO_PKG_VERSION"));
    config
        .headers
        .push((USER_AGENT, HeaderValue::from_static(agent)));
    let metrics = metrics.clone();
    let count =
        tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
            metrics.api_request(request.method().as_str());
            request
        });
    Ok(ClientBuilder::try_from(config)?.with_layer(&count).build())
}
