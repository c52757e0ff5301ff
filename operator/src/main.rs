//! `sanctum`: the operator binary. `run` starts the controllers; `crds` prints the CRDs.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use http::HeaderValue;
use http::header::USER_AGENT;
use kube::Client;
use kube::client::ClientBuilder;
use sanctum_operator::cloud::{Cloud, CloudConfig};
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
    Run(RunArgs),
    /// Print the CRDs and admission policy (or write the files of `crds/` with --write).
    Crds {
        /// Directory to write `<plural>.yaml` files into instead of printing.
        #[arg(long)]
        write: Option<PathBuf>,
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
    /// S3/KMS endpoint for S3-compatible stores or an emulator; AWS when unset.
    #[arg(long, env = "SANCTUM_AWS_ENDPOINT")]
    aws_endpoint: Option<String>,
    /// Default AWS region for keys and buckets.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    aws_region: String,
    /// Use path-style S3 addressing (most S3-compatible stores need it).
    #[arg(long, env = "SANCTUM_S3_PATH_STYLE", default_value_t = false)]
    s3_path_style: bool,
    /// This replica's name in Events (normally the pod name).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crds { write: None } => print!("{}", crds::to_yaml_stream()?),
        Command::Crds { write: Some(dir) } => {
            for (file, objects) in crds::all() {
                let path = dir.join(file);
                std::fs::write(&path, crds::to_yaml(&objects)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Command::Run(args) => run(args).await?,
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
    let config = RunConfig {
        operator_namespace: args.namespace,
        tenant_selector: args.tenant_selector,
        resync: Duration::from_secs(args.resync_seconds),
        instance: args.instance,
    };
    let cloud = Cloud::new(&CloudConfig {
        endpoint: args.aws_endpoint,
        region: args.aws_region,
        force_path_style: args.s3_path_style,
    })
    .await;
    tokio::select! {
        result = controller::run(client, metrics, ready, config, cloud) => result,
        result = http => Err(anyhow::anyhow!("HTTP endpoint stopped: {:?}", result)),
    }
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
