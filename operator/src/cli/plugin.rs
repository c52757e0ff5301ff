//! `kubectl sanctum`: what a platform team and an auditor ask of a tenant, answered from
//! live reads: `status`, `evidence`, `verify-audit` and `restore-drill`.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use sanctum_api::{KeyProvider, VideoTenant, conditions};
use sanctum_cloud::CloudArgs;

use crate::backup;
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
    /// Restore the newest backup into a scratch bucket, check every SHA-256, open one
    /// recording, then delete the bucket.
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
        /// The local provider's master key, to open a recording too (`aws`: KMS is used).
        #[arg(long)]
        local_master_key_file: Option<PathBuf>,
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
            backup,
            keep,
            local_master_key_file,
        } => {
            let flags = DrillFlags {
                scratch_bucket,
                backup,
                keep,
                local_master_key_file,
            };
            restore_drill(&client, &args.cloud, &tenant, flags).await
        }
    }
}

/// The restore drill: needs write access to a scratch bucket, so it runs under the
/// credentials of whoever holds the drill, never the auditor's read-only role. With the
/// `aws` provider it also opens a recording (KMS `Decrypt` under the tenant's context);
/// with `local`, when given the master key.
async fn restore_drill(
    client: &Client,
    cloud: &CloudArgs,
    tenant: &str,
    drill: DrillFlags,
) -> anyhow::Result<bool> {
    let vt = Api::<VideoTenant>::all(client.clone())
        .get(tenant)
        .await
        .with_context(|| format!("reading VideoTenant {tenant}"))?;
    let destination = vt
        .spec
        .backup
        .clone()
        .context("the tenant has no spec.backup: nothing to drill")?
        .destination;
    let opener = match (vt.spec.encryption.provider, &drill.local_master_key_file) {
        (KeyProvider::Aws, _) => backup::drill::Opener::Kms {
            uid: vt.uid().context("the VideoTenant has no uid")?,
        },
        (KeyProvider::Local, Some(path)) => backup::drill::Opener::Local {
            master: zeroize::Zeroizing::new(
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            ),
        },
        (KeyProvider::Local, None) => backup::drill::Opener::Skip,
    };
    let source = cloud.connect_in(destination.region.as_deref()).await?;
    let target = cloud.connect().await?;
    let plan = backup::drill::DrillPlan {
        tenant: tenant.to_string(),
        backup_bucket: destination.bucket,
        backup_id: drill.backup,
        scratch_bucket: drill.scratch_bucket,
        keep: drill.keep,
        opener,
        sweep_prefix: None,
    };
    let report = backup::drill::drill(&source, &target, &plan).await?;
    let mut json = serde_json::to_value(&report)?;
    json["outcome"] = report.outcome().into();
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(report.error.is_none())
}

/// What `restore-drill` was asked for beyond the tenant.
struct DrillFlags {
    scratch_bucket: String,
    backup: Option<String>,
    keep: bool,
    local_master_key_file: Option<PathBuf>,
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
        "TENANT               READY    REGIONS    KEY          BUCKET                         LAST BACKUP            LAST DRILL             AUDIT HEAD"
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
        let drill = match (
            &status.last_restore_drill_outcome,
            &status.last_restore_drill_time,
        ) {
            (Some(outcome), Some(time)) => format!("{outcome} {} ago", evidence::age(time.0, now)),
            _ => "-".into(),
        };
        let head = status
            .last_audit_record
            .as_ref()
            .map(|a| format!("{}:{}", a.seq, &a.hash[..a.hash.len().min(12)]))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<20} {} {:<10} {:<12} {:<30} {:<22} {:<22} {}",
            t.name_any(),
            paint(&format!("{ready:<8}"), ready == "True"),
            regions,
            key,
            status.bucket.as_deref().unwrap_or("-"),
            backup,
            drill,
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
