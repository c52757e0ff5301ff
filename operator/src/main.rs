//! `sanctum`: the operator binary. `run` starts the controllers; `crds` prints the CRDs.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use http::HeaderValue;
use http::header::USER_AGENT;
use kube::Client;
use kube::client::ClientBuilder;
use kube_lease_manager::LeaseManagerBuilder;
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
    Run(Box<RunArgs>),
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
    /// Seconds between re-verifications of a sealed recording's SHA-256 in S3.
    #[arg(
        long,
        env = "SANCTUM_INTEGRITY_CHECK_SECONDS",
        default_value_t = 86_400
    )]
    integrity_check_seconds: u64,
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
    let config = RunConfig {
        operator_namespace: args.namespace,
        tenant_selector: args.tenant_selector,
        resync: Duration::from_secs(args.resync_seconds),
        instance: args.instance,
        key_providers: args
            .key_providers
            .iter()
            .map(|p| match p {
                ProviderArg::Aws => sanctum_api::KeyProvider::Aws,
                ProviderArg::Local => sanctum_api::KeyProvider::Local,
            })
            .collect(),
        integrity_interval: Duration::from_secs(args.integrity_check_seconds.max(1)),
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
    };
    let cloud = Cloud::new(&CloudConfig {
        endpoint: args.aws_endpoint,
        region: args.aws_region,
        force_path_style: args.s3_path_style,
    })
    .await;
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
    tokio::select! {
        result = controller::run(client, metrics, ready, config, cloud) => result,
        result = http => Err(anyhow::anyhow!("HTTP endpoint stopped: {:?}", result)),
        () = lost => Err(anyhow::anyhow!("lost the leader Lease; exiting so a fresh start can compete again")),
    }
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
