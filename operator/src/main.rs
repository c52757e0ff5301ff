//! `sanctum`: the operator binary. `run` starts the controllers; `backup` and `restore`
//! are a tenant's batch jobs; `audit` checks a trail; `crds` prints the CRDs.

#![forbid(unsafe_code)]

use anyhow::Context as _;
use clap::Parser as _;
use sanctum_operator::cli::audit::audit;
use sanctum_operator::cli::backup::{backup, restore, restore_drill};
use sanctum_operator::cli::run::run;
use sanctum_operator::cli::{Cli, Command};
use sanctum_operator::crds;

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
