//! `sanctum backup`, `sanctum restore` and `sanctum restore-drill`: the batch jobs a
//! tenant's backup and restore-drill CronJobs run, and the restore people run.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::backup;
use crate::telemetry::{self, LogFormat};
use anyhow::Context as _;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use sanctum_cloud::CloudArgs;

#[derive(clap::Args)]
pub struct BackupArgs {
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
pub struct RestoreArgs {
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

pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Json);
    let result_file = args.result_file.clone();
    let outcome = run_backup(args).await;
    let line = match &outcome {
        Ok(summary) => summary.to_string(),
        Err(e) => serde_json::json!({ "error": format!("{e:#}") }).to_string(),
    };
    write_result(result_file.as_deref(), &line);
    println!("{}", outcome?);
    Ok(())
}

/// Writes a job's one-line JSON result where the operator reads it (the termination
/// message). Kubernetes keeps at most 4096 bytes of one: cut at a char boundary below
/// that. A file that cannot be written must not turn a run that worked into a failure
/// (the Job would run it again), nor hide why one failed.
fn write_result(path: Option<&std::path::Path>, line: &str) {
    let Some(path) = path else { return };
    let mut end = line.len().min(4000);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    if let Err(error) = std::fs::write(path, &line[..end]) {
        tracing::warn!(%error, path = %path.display(), "could not write the result file");
    }
}

#[derive(clap::Args)]
pub struct DrillArgs {
    /// Tenant whose backup to drill.
    #[arg(long)]
    tenant: String,
    /// The tenant's uid: the KMS encryption context that unwraps its keys (`aws` provider).
    #[arg(long, required_if_eq("key_provider", "aws"))]
    tenant_uid: Option<String>,
    /// How the tenant's keys are wrapped.
    #[arg(long, value_enum)]
    key_provider: DrillProvider,
    /// The local provider's master key (the `local` provider).
    #[arg(long, env = sanctum_api::env::LOCAL_MASTER_KEY_FILE, required_if_eq("key_provider", "local"))]
    local_master_key_file: Option<PathBuf>,
    /// Backup bucket.
    #[arg(long)]
    backup_bucket: String,
    /// Region of the backup bucket (default: `--aws-region`).
    #[arg(long)]
    backup_region: Option<String>,
    /// Scratch buckets are named `<prefix>-<start time>`; tagged ones of this tenant left
    /// under the prefix by a crashed run are removed first.
    #[arg(long)]
    scratch_bucket_prefix: String,
    /// File to write the result to as one line of JSON (the termination message).
    #[arg(long)]
    result_file: Option<PathBuf>,
    #[command(flatten)]
    cloud: CloudArgs,
}

/// Key providers a drill can open a sample with.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DrillProvider {
    /// KMS `Decrypt` under the tenant's context.
    Aws,
    /// The local master key.
    Local,
}

/// What the tenant's restore-drill CronJob runs: the newest backup restored into a new
/// scratch bucket, checked, one recording opened, the bucket removed; exit 1 on failure.
pub async fn restore_drill(args: DrillArgs) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Json);
    let result_file = args.result_file.clone();
    let outcome = run_drill(args).await;
    let (line, failed) = match &outcome {
        Ok(report) => (
            serde_json::to_string(report).unwrap_or_default(),
            report.error.clone(),
        ),
        Err(e) => {
            let error = format!("{e:#}");
            (
                serde_json::json!({ "error": error }).to_string(),
                Some(error),
            )
        }
    };
    write_result(result_file.as_deref(), &line);
    println!("{line}");
    match failed {
        Some(error) => anyhow::bail!("restore drill failed: {error}"),
        None => Ok(()),
    }
}

async fn run_drill(args: DrillArgs) -> anyhow::Result<backup::drill::DrillReport> {
    let opener = match args.key_provider {
        DrillProvider::Aws => backup::drill::Opener::Kms {
            uid: args.tenant_uid.context("--tenant-uid is required")?,
        },
        DrillProvider::Local => {
            let path = args
                .local_master_key_file
                .context("--local-master-key-file is required")?;
            backup::drill::Opener::Local {
                master: zeroize::Zeroizing::new(
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
                ),
            }
        }
    };
    let source = args.cloud.connect_in(args.backup_region.as_deref()).await?;
    let target = args.cloud.connect().await?;
    let plan = backup::drill::DrillPlan {
        scratch_bucket: backup::drill::scratch_name(
            &args.scratch_bucket_prefix,
            jiff::Timestamp::now(),
        ),
        tenant: args.tenant,
        backup_bucket: args.backup_bucket,
        backup_id: None,
        keep: false,
        opener,
        sweep_prefix: Some(format!("{}-", args.scratch_bucket_prefix)),
    };
    Ok(backup::drill::drill(&source, &target, &plan).await?)
}

pub async fn run_backup(args: BackupArgs) -> anyhow::Result<serde_json::Value> {
    let wrapped_keys = match (&args.keys_dir, &args.namespace) {
        (Some(dir), _) => backup::read_key_dir(dir)
            .with_context(|| format!("reading the wrapped tenant keys in {}", dir.display()))?,
        (None, Some(namespace)) => {
            let client = Client::try_default()
                .await
                .context("no Kubernetes configuration found")?;
            let secret = Api::<Secret>::namespaced(client, namespace)
                .get(crate::controller::tenant::build::tenant_key::SECRET_NAME)
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

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
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
