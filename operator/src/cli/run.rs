//! `sanctum run`: the operator's runtime. Connects to the cluster and the cloud, takes the
//! leader Lease, starts the audit trail, the health server and the controllers, and
//! stops them together.

use sanctum_api::KeyProvider;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::audit::store::{AuditStore, DEFAULT_RETENTION_DAYS};
use crate::audit::trail::{Trail, Writer};
use crate::audit::{self, AuditMeter};
use crate::controller::tenant::build::backup::BackupJobs;
use crate::controller::tenant::build::irsa::RoleTemplate;
use crate::controller::tenant::build::{AwsEnv, MediaNodes, OperatorIdentity};
use crate::controller::{self, RunConfig};
use crate::http::{HttpState, serve};
use crate::metrics::Metrics;
use crate::telemetry::{self, LogFormat};
use anyhow::Context as _;
use http::HeaderValue;
use http::header::USER_AGENT;
use kube::Client;
use kube::client::ClientBuilder;
use kube::runtime::events::{Recorder, Reporter};
use kube_lease_manager::LeaseManagerBuilder;
use sanctum_cloud::CloudArgs;

#[derive(clap::Args)]
pub struct RunArgs {
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
    #[arg(long, env = "SANCTUM_KEY_PROVIDERS", value_delimiter = ',', default_values_t = vec![KeyProvider::Aws, KeyProvider::Local])]
    key_providers: Vec<KeyProvider>,
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
    /// holding only the backup's S3 rights (docs/iam.md); `{tenant}` in it stands for the
    /// tenant's name, giving each tenant a role of its own.
    #[arg(long, env = "SANCTUM_BACKUP_ROLE_ARN")]
    backup_role_arn: Option<RoleTemplate>,
    /// IAM role for restore-drill pods (IRSA annotation on the tenant's `restore-drill`
    /// ServiceAccount): read the backup bucket, make and remove scratch buckets, unwrap the
    /// tenant's keys (docs/iam.md); `{tenant}` stands for the tenant's name.
    #[arg(long, env = "SANCTUM_RESTORE_DRILL_ROLE_ARN")]
    restore_drill_role_arn: Option<RoleTemplate>,
    /// IAM role for media nodes (IRSA annotation on the tenant's `media-node`
    /// ServiceAccount): unwrap the tenant's data key, upload its recordings, append the
    /// session trail (docs/iam.md); `{tenant}` stands for the tenant's name.
    #[arg(long, env = "SANCTUM_MEDIA_ROLE_ARN")]
    media_role_arn: Option<RoleTemplate>,
    /// Seconds a rotated-out join-token key stays published beside the new one. Default:
    /// the tenant's `maxSessionMinutes` plus 11 minutes (the longest token a node accepts,
    /// and its clock leeway), so tokens and sessions the old key admitted keep working.
    #[arg(long, env = "SANCTUM_JOIN_KEY_OVERLAP_SECONDS")]
    join_key_overlap_seconds: Option<u64>,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    for (flag, role) in [
        ("--backup-role-arn", &args.backup_role_arn),
        ("--restore-drill-role-arn", &args.restore_drill_role_arn),
        ("--media-role-arn", &args.media_role_arn),
    ] {
        if role.as_ref().is_some_and(|r| !r.per_tenant()) {
            tracing::warn!(
                flag,
                "one IAM role for every tenant: put {{tenant}} in it to give each tenant its own"
            );
        }
    }
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
    // Here only once the Lease is held (or there is none to hold).
    metrics.leading(true);
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
        join_key_overlap: args.join_key_overlap_seconds.map(Duration::from_secs),
        instance: args.instance.clone(),
        key_providers: args.key_providers,
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
            role_arn: args.media_role_arn.clone(),
            audit_bucket: args.audit_bucket.clone(),
            aws: aws_env.clone(),
        },
        backup: BackupJobs {
            image: args.backup_image,
            role_arn: args.backup_role_arn,
            drill_role_arn: args.restore_drill_role_arn,
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
                    controller: crate::CONTROLLER_NAME.to_string(),
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

/// Waits until this replica holds the leader Lease; the receiver turns false if it is lost.
pub async fn acquire_leadership(
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
pub async fn client(metrics: &Metrics) -> anyhow::Result<Client> {
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
