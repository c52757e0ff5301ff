//! `sanctum`: the operator binary. `run` starts the controllers; `backup` and `restore`
//! are a tenant's batch jobs; `audit` checks a trail; `crds` prints the CRDs.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sanctum_operator::cli::audit::{AuditCommand, audit};
use sanctum_operator::cli::backup::{
    BackupArgs, DrillArgs, RestoreArgs, backup, restore, restore_drill,
};
use sanctum_operator::cli::run::{RunArgs, run};
use sanctum_operator::crds;

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
    /// Restore a tenant's newest backup into a new scratch bucket, check every SHA-256,
    /// open one recording, and remove the bucket (what the restore-drill CronJob runs).
    RestoreDrill(Box<DrillArgs>),
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
        Command::RestoreDrill(args) => restore_drill(*args).await?,
    }
    Ok(())
}
