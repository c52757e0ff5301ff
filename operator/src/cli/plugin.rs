//! `kubectl sanctum`: what a platform team and an auditor ask of a tenant, answered from
//! live reads: `status`, `evidence`, `verify-audit` and `restore-drill`.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use sanctum_api::{VideoTenant, conditions};
use sanctum_cloud::CloudArgs;

use crate::backup;
use crate::cloud::objects;
use crate::evidence::{self, Sources, render};

/// kubectl sanctum: status, compliance evidence, audit verification and restore drills of
/// Sanctum video tenants.
#[derive(Parser)]
#[command(name = "kubectl-sanctum", bin_name = "kubectl sanctum", version, about)]
pub struct Plugin {
    #[command(subcommand)]
    command: PluginCommand,
    /// The operator's namespace (audit signers).
    #[arg(
        long,
        global = true,
        env = "SANCTUM_OPERATOR_NAMESPACE",
        default_value = "sanctum-system"
    )]
    operator_namespace: String,
    /// The audit bucket the operator writes to.
    #[arg(long, global = true, env = "SANCTUM_AUDIT_BUCKET")]
    audit_bucket: Option<String>,
    #[command(flatten)]
    cloud: CloudArgs,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Tenants at a glance (one, or all).
    Status {
        /// Tenant; every tenant when omitted.
        tenant: Option<String>,
    },
    /// A compliance report read live; exits 1 when any safeguard fails.
    Evidence {
        /// Tenant.
        tenant: String,
        /// Earliest audit record (RFC 3339), inclusive.
        #[arg(long)]
        since: Option<Timestamp>,
        /// Latest audit record (RFC 3339), exclusive.
        #[arg(long)]
        until: Option<Timestamp>,
        /// Output format.
        #[arg(long, value_enum, default_value = "md")]
        format: Format,
        /// Write the report here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Verify the tenant's audit chain against its anchor (status.lastAuditRecord).
    VerifyAudit {
        /// Tenant.
        tenant: String,
    },
    /// Restore the newest backup into a scratch bucket, check every SHA-256, then delete it.
    RestoreDrill {
        /// Tenant.
        tenant: String,
        /// Bucket to restore into: must not exist yet (it is made and removed by the drill).
        #[arg(long)]
        scratch_bucket: String,
        /// Backup id; the newest when omitted.
        #[arg(long)]
        backup: Option<String>,
        /// Keep the scratch bucket and its objects instead of deleting them.
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Md,
    Json,
    Html,
}

/// Runs the plugin; `Ok(false)` when the answer is a failure (exit 1).
pub async fn plugin(args: Plugin) -> anyhow::Result<bool> {
    let client = Client::try_default()
        .await
        .context("no Kubernetes configuration found (KUBECONFIG or in-cluster)")?;
    match args.command {
        PluginCommand::Status { tenant } => status(&client, tenant.as_deref()).await,
        PluginCommand::Evidence {
            tenant,
            since,
            until,
            format,
            output,
        } => {
            let cloud = args.cloud.connect().await?;
            let sources = Sources {
                client,
                cloud: &cloud,
                operator_namespace: &args.operator_namespace,
                audit_bucket: args.audit_bucket.as_deref(),
            };
            let report = evidence::gather(&sources, &tenant, since, until).await?;
            let text = match format {
                Format::Json => serde_json::to_string_pretty(&report)? + "\n",
                Format::Md => render::markdown(&report),
                Format::Html => render::html(&report),
            };
            match &output {
                Some(path) => std::fs::write(path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
            let failing = report.failing();
            for c in &failing {
                eprintln!(
                    "FAIL {} {}: {}",
                    c.control.id,
                    c.control.title,
                    c.failing.join(", ")
                );
            }
            Ok(failing.is_empty())
        }
        PluginCommand::VerifyAudit { tenant } => {
            let bucket = args
                .audit_bucket
                .context("--audit-bucket (or SANCTUM_AUDIT_BUCKET) names the audit bucket")?;
            let cloud = args.cloud.connect().await?;
            let sources = Sources {
                client: client.clone(),
                cloud: &cloud,
                operator_namespace: &args.operator_namespace,
                audit_bucket: Some(&bucket),
            };
            let status = Api::<VideoTenant>::all(client)
                .get(&tenant)
                .await
                .with_context(|| format!("reading VideoTenant {tenant}"))?
                .status
                .unwrap_or_default();
            let anchor = evidence::anchor(&status);
            match evidence::verify(&sources, &bucket, &tenant, anchor.as_ref()).await? {
                Ok(report) => {
                    for chain in &report.chains {
                        println!(
                            "audit chain of {tenant} ({}) intact and signed: {} records in {} objects, last {}",
                            chain.name, chain.head.seq, chain.objects, chain.head.hash
                        );
                    }
                    match anchor {
                        Some(a) => {
                            println!("anchor {}:{} (status.lastAuditRecord) held", a.seq, a.hash)
                        }
                        None => println!(
                            "the tenant has no status.lastAuditRecord yet: the chain was checked without an anchor"
                        ),
                    }
                    Ok(true)
                }
                Err(e) => {
                    eprintln!("audit chain of {tenant} broken: {e:#}");
                    Ok(false)
                }
            }
        }
        PluginCommand::RestoreDrill {
            tenant,
            scratch_bucket,
            backup: id,
            keep,
        } => {
            restore_drill(
                &client,
                &args.cloud,
                &tenant,
                &scratch_bucket,
                id.as_deref(),
                keep,
            )
            .await
        }
    }
}

/// The restore drill: needs write access to a scratch bucket, so it runs under the
/// credentials of whoever holds the drill, never the auditor's read-only role.
async fn restore_drill(
    client: &Client,
    cloud: &CloudArgs,
    tenant: &str,
    scratch_bucket: &str,
    id: Option<&str>,
    keep: bool,
) -> anyhow::Result<bool> {
    let spec = Api::<VideoTenant>::all(client.clone())
        .get(tenant)
        .await
        .with_context(|| format!("reading VideoTenant {tenant}"))?
        .spec;
    let destination = spec
        .backup
        .context("the tenant has no spec.backup: nothing to drill")?
        .destination;
    let source = cloud.connect_in(destination.region.as_deref()).await?;
    let target = cloud.connect().await?;
    let exists = target
        .s3
        .head_bucket()
        .bucket(scratch_bucket)
        .send()
        .await
        .is_ok();
    anyhow::ensure!(
        !exists,
        "scratch bucket {scratch_bucket} exists; a drill restores into a new bucket only"
    );
    target
        .s3
        .create_bucket()
        .bucket(scratch_bucket)
        .send()
        .await
        .map_err(|e| crate::cloud::CloudError::from_sdk("CreateBucket", &e))?;
    // In us-east-1 CreateBucket also succeeds on a bucket the caller already owns, so one
    // made by someone else between the check above and the call would pass unnoticed: the
    // drill goes on (and later empties the bucket) only when it holds nothing.
    let present = objects::list_keys(&target.s3, scratch_bucket, "").await?;
    anyhow::ensure!(
        present.is_empty(),
        "scratch bucket {scratch_bucket} appeared with {} object(s) before the drill wrote any; nothing was restored or deleted",
        present.len()
    );
    let outcome = backup::restore(
        &source,
        &target,
        &destination.bucket,
        tenant,
        id,
        scratch_bucket,
    )
    .await;
    let mut cleaned = 0;
    if !keep {
        let keys = objects::list_keys(&target.s3, scratch_bucket, "").await?;
        for key in &keys {
            cleaned += objects::delete_all_versions(&target.s3, scratch_bucket, key).await?;
        }
        target
            .s3
            .delete_bucket()
            .bucket(scratch_bucket)
            .send()
            .await
            .map_err(|e| crate::cloud::CloudError::from_sdk("DeleteBucket", &e))?;
    }
    let (report, keys) = outcome?;
    let ok = report.missing.is_empty() && report.mismatched.is_empty() && !keys.is_empty();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "backup": report.backup,
            "restored": report.restored.len(),
            "missing": report.missing,
            "mismatched": report.mismatched,
            "keyVersions": report.key_versions,
            "outcome": if ok { "Succeeded" } else { "Failed" },
            "scratchVersionsDeleted": cleaned,
            "scratchBucketKept": keep,
        }))?
    );
    Ok(ok)
}

async fn status(client: &Client, only: Option<&str>) -> anyhow::Result<bool> {
    let api = Api::<VideoTenant>::all(client.clone());
    let tenants = match only {
        Some(name) => vec![
            api.get(name)
                .await
                .with_context(|| format!("reading VideoTenant {name}"))?,
        ],
        None => api.list(&ListParams::default()).await?.items,
    };
    let colour = std::io::stdout().is_terminal();
    let paint = |text: &str, good: bool| {
        if colour {
            format!("\x1b[{}m{text}\x1b[0m", if good { 32 } else { 31 })
        } else {
            text.to_string()
        }
    };
    let now = Timestamp::now();
    let mut all_ready = true;
    println!(
        "TENANT               READY    REGIONS    KEY          BUCKET                         LAST BACKUP            AUDIT HEAD"
    );
    for t in &tenants {
        let status = t.status.clone().unwrap_or_default();
        let ready =
            evidence::conditions_of(t, conditions::READY).unwrap_or_else(|| "Unknown".into());
        all_ready &= ready == "True";
        let regions = format!(
            "{}/{}",
            status.regions.iter().map(|r| r.ready).sum::<i32>(),
            status.regions.iter().map(|r| r.desired).sum::<i32>()
        );
        let key = status
            .key_version
            .map(|v| format!("v{v}"))
            .unwrap_or_else(|| "-".into());
        let backup = match (&status.last_backup_outcome, &status.last_backup_time) {
            (Some(outcome), Some(time)) => format!("{outcome} {} ago", evidence::age(time.0, now)),
            _ => "-".into(),
        };
        let head = status
            .last_audit_record
            .as_ref()
            .map(|a| format!("{}:{}", a.seq, &a.hash[..a.hash.len().min(12)]))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<20} {} {:<10} {:<12} {:<30} {:<22} {}",
            t.name_any(),
            paint(&format!("{ready:<8}"), ready == "True"),
            regions,
            key,
            status.bucket.as_deref().unwrap_or("-"),
            backup,
            head
        );
        let failing: Vec<_> = status
            .conditions
            .iter()
            .filter(|c| {
                c.status != "True"
                    && c.type_ != conditions::RECONCILING
                    && c.type_ != conditions::STALLED
            })
            .chain(
                status
                    .conditions
                    .iter()
                    .filter(|c| c.type_ == conditions::STALLED && c.status == "True"),
            )
            .collect();
        for c in failing {
            println!("  {} {}: {}", paint(&c.type_, false), c.reason, c.message);
        }
    }
    Ok(all_ready)
}
