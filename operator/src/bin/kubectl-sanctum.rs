//! `kubectl-sanctum`: the kubectl plugin (`kubectl sanctum ...` once on the PATH).

#![forbid(unsafe_code)]

use clap::Parser as _;
use sanctum_operator::cli::plugin::{Plugin, plugin};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match plugin(Plugin::parse()).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("kubectl sanctum: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
