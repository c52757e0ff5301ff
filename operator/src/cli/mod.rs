//! The subcommands of the `sanctum` binary, one module each; `main.rs` parses the command
//! line with [`Cli`] (here, so the documentation's examples can be parsed by tests) and
//! dispatches.

pub mod audit;
pub mod backup;
pub mod plugin;
pub mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use audit::AuditCommand;
use backup::{BackupArgs, DrillArgs, RestoreArgs};
use run::RunArgs;

/// Sanctum: HIPAA-grade video tenants on Kubernetes.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands, each a module of [`crate::cli`].
#[derive(Subcommand)]
pub enum Command {
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
