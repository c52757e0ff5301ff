//! Controllers: the watch loops and the shared context they reconcile with.

pub mod cache;
pub mod conditions;
pub mod recording;
pub mod ssa;
pub mod tenant;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, ResourceQuota, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::ListParams;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use sanctum_api::labels;
use sanctum_api::{Recording, VideoTenant};
use serde::de::DeserializeOwned;

use self::cache::Caches;
use crate::audit::trail::Trail;
use crate::audit::{Entry, Heads};
use crate::cloud::Cloud;
use crate::metrics::Metrics;

/// Event notes are capped at 1024 bytes by the API server; a longer note would lose the
/// whole Event, so it is cut at a character boundary with an ellipsis.
pub(crate) fn event_note(mut note: String) -> String {
    const MAX: usize = 1000;
    if note.len() > MAX {
        let mut cut = MAX - 3;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
    note
}

/// Everything a reconcile needs besides the object itself.
pub struct Context {
    /// Kubernetes client (counts its requests in `metrics`).
    pub client: Client,
    /// Shared metrics.
    pub metrics: Metrics,
    /// Publishes `events.k8s.io/v1` Events on the reconciled objects.
    pub recorder: Recorder,
    /// Settings from the command line.
    pub config: RunConfig,
    /// KMS and S3 clients.
    pub cloud: Cloud,
    /// The tenants' audit trails (disabled without an audit bucket).
    pub trail: Trail,
    /// Where the tenants' chains end in the bucket: their `status.lastAuditRecord`.
    pub heads: Heads,
    /// The failure last written to each tenant's audit trail: the same failure repeated
    /// is written once (its Events still repeat).
    last_failures: Mutex<HashMap<String, String>>,
    /// Children as the watches last saw them (empty when no controller runs).
    pub caches: Caches,
    /// Consecutive failures per tenant, for exponential retry backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The last backup Job announced per tenant, so a run is announced once.
    reported_backups: Mutex<HashMap<String, String>>,
    /// Control clients of the tenants' media nodes, reused between reconciles.
    pub control_clients: recording::ControlClients,
    /// Every tenant this replica watches (the tenant controller's store), to tell a
    /// tenant's resources from another's.
    pub tenants: Option<reflector::Store<DeserializeGuard<VideoTenant>>>,
}

impl Context {
    /// Builds a context; the client should count its requests into `metrics`.
    pub fn new(client: Client, metrics: Metrics, config: RunConfig, cloud: Cloud) -> Self {
        let reporter = Reporter {
            controller: crate::CONTROLLER_NAME.to_string(),
            instance: config.instance.clone(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            config,
            cloud,
            trail: Trail::disabled(),
            heads: Heads::default(),
            last_failures: Mutex::default(),
            caches: Caches::default(),
            failures: Mutex::default(),
            reported_backups: Mutex::default(),
            control_clients: recording::ControlClients::default(),
            tenants: None,
        }
    }

    /// Reads children from `caches` instead of the API server.
    pub fn with_caches(mut self, caches: Caches) -> Self {
        self.caches = caches;
        self
    }

    /// Lets reconciles look at the other tenants through `store`.
    pub fn with_tenants(mut self, store: reflector::Store<DeserializeGuard<VideoTenant>>) -> Self {
        self.tenants = Some(store);
        self
    }

    /// Sends this context's audit entries to `trail`, whose chain heads `heads` holds.
    pub fn with_audit(mut self, trail: Trail, heads: Heads) -> Self {
        self.trail = trail;
        self.heads = heads;
        self
    }

    /// True when `failure` is not what `tenant`'s trail last recorded as its failure (and
    /// remembers it): a tenant stalled on one cause gets one record, not one per retry.
    pub fn new_failure(&self, tenant: &str, failure: &str) -> bool {
        let mut last = self.last_failures.lock().expect("failure map lock");
        last.insert(tenant.to_string(), failure.to_string())
            .as_deref()
            != Some(failure)
    }

    /// Adds what a reconcile did to `object` (or how it failed) to `tenant`'s audit trail.
    pub fn audit<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        tenant: &str,
        controller: &str,
        outcome: &str,
        actions: &str,
    ) {
        let meta = object.meta();
        self.trail.record(Entry {
            tenant: tenant.to_string(),
            time: k8s_openapi::jiff::Timestamp::now().to_string(),
            controller: controller.to_string(),
            kind: K::kind(&()).to_string(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone(),
            generation: meta.generation,
            actions: actions.to_string(),
            outcome: outcome.to_string(),
        });
    }

    /// True the first time `job` is reported for `tenant` by this process.
    pub fn first_report(&self, tenant: &str, job: &str) -> bool {
        let mut reported = self
            .reported_backups
            .lock()
            .expect("reported backups lock is never poisoned");
        reported
            .insert(tenant.to_string(), job.to_string())
            .as_deref()
            != Some(job)
    }

    /// Delay before retrying `key` after one more failure: 1 s doubling up to 5 minutes.
    pub fn next_backoff(&self, key: &str) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .expect("backoff map lock is never poisoned");
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_secs(1u64 << (*n - 1).min(8)).min(Duration::from_secs(300))
    }

    /// Forgets the failures of `key` after a success.
    pub fn reset_backoff(&self, key: &str) {
        self.failures
            .lock()
            .expect("backoff map lock is never poisoned")
            .remove(key);
        self.last_failures
            .lock()
            .expect("failure map lock")
            .remove(key);
    }
}

/// Operator settings that shape reconciles.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Namespace the operator runs in; tenants may not use it.
    pub operator_namespace: String,
    /// Only reconcile tenants matching this label selector (for sharding and tests).
    pub tenant_selector: Option<String>,
    /// Periodic re-check of converged tenants, to repair drift no watch reports.
    pub resync: Duration,
    /// Identity of this replica in Events (normally the pod name).
    pub instance: Option<String>,
    /// Key providers tenants may use; others are Stalled with a reason.
    pub key_providers: Vec<sanctum_api::KeyProvider>,
    /// How often a sealed recording's checksum is re-verified in S3.
    pub integrity_interval: Duration,
    /// Host names pinned to addresses for media-node control requests.
    pub resolve: Vec<(String, std::net::IpAddr)>,
    /// Quiet time before a tenant reconcile runs, so a burst of child events costs one.
    pub debounce: Duration,
    /// Tenant reconciles at once (0 = unbounded), to cap load on the API server and cloud.
    pub concurrency: u16,
    /// How tenants' backup CronJobs run their pods.
    pub backup: tenant::build::backup::BackupJobs,
    /// The operator's ServiceAccount and tenant-Secrets role (set by the chart): it binds
    /// itself that role in each tenant namespace. `None` (an operator with cluster-wide
    /// Secret rights, as in the tests) binds nothing.
    pub identity: Option<tenant::build::OperatorIdentity>,
    /// How media-node pods reach the cloud (and the audit bucket of their session logs).
    pub media: tenant::build::MediaNodes,
    /// How long a rotated-out join-token key stays published; `None`: the tenant's
    /// longest session plus the longest token lifetime (so no visit it admitted breaks).
    pub join_key_overlap: Option<Duration>,
}

/// The audit trail the controllers write to, and where its chains end.
#[derive(Default)]
pub struct Audit {
    /// The trail (disabled without an audit bucket).
    pub trail: Trail,
    /// The chains' heads as written.
    pub heads: Heads,
    /// Names each tenant whose chain moved, so its anchor in status follows.
    pub moved: Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
}

/// The object a watch delivered, or `None` for one that does not deserialize (a stored
/// object an older or newer schema wrote): that one gets a Warning Event and the failure
/// metric, and every other object is reconciled as usual. The Event names the problem
/// with quoted values blanked, so no field's content reaches it.
pub async fn guarded<K>(
    ctx: &Context,
    guard: &DeserializeGuard<K>,
    controller: &'static str,
) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone,
{
    let invalid = match &guard.0 {
        Ok(object) => return Some(Arc::new(object.clone())),
        Err(invalid) => invalid,
    };
    ctx.metrics.reconcile_failed(controller, "InvalidObject");
    let problem = blank_quoted(&invalid.error);
    tracing::warn!(
        name = invalid.metadata.name.as_deref().unwrap_or(""),
        namespace = invalid.metadata.namespace.as_deref().unwrap_or(""),
        problem,
        "a stored object does not match its type; skipped"
    );
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: invalid.metadata.name.clone(),
        namespace: invalid.metadata.namespace.clone(),
        uid: invalid.metadata.uid.clone(),
        ..Default::default()
    };
    let event = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Warning,
        reason: "InvalidObject".into(),
        note: Some(event_note(format!(
            "this {} does not match the schema of this operator ({problem}); fix the field or apply the manifest again",
            K::kind(&())
        ))),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &reference).await {
        tracing::warn!(%error, "could not publish the InvalidObject event");
    }
    None
}

/// `text` with the content of every double-quoted string replaced by `…`.
fn blank_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…");
            } else {
                out.push('"');
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// Runs the `VideoTenant` controller until SIGTERM or Ctrl-C.
pub async fn run(
    client: Client,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    config: RunConfig,
    cloud: Cloud,
    audit: Audit,
) -> anyhow::Result<()> {
    // Objects are read through `DeserializeGuard`: one stored object that does not match its
    // type (written under another schema) is reported and skipped, never stops a watch.
    let tenants = Api::<DeserializeGuard<VideoTenant>>::all(client.clone());
    if let Err(e) = tenants.list_metadata(&ListParams::default().limit(1)).await {
        anyhow::bail!(
            "cannot list VideoTenants ({e}); are the CRDs installed? Install them with `sanctum crds | kubectl apply --server-side -f -`"
        );
    }
    let mut tenant_watch = watcher::Config::default();
    if let Some(selector) = &config.tenant_selector {
        tenant_watch = tenant_watch.labels(selector);
    }
    let tenant_config = controller::Config::default()
        .debounce(config.debounce)
        .concurrency(config.concurrency);
    let controller = Controller::new(tenants, tenant_watch).with_config(tenant_config);
    let mut caches = Caches::default();
    let controller = watch_owned::<Namespace>(controller, &client, &mut caches);
    let controller = watch_owned::<NetworkPolicy>(controller, &client, &mut caches);
    let controller = watch_owned::<ResourceQuota>(controller, &client, &mut caches);
    let controller = watch_owned::<LimitRange>(controller, &client, &mut caches);
    let controller = watch_owned::<ServiceAccount>(controller, &client, &mut caches);
    let controller = watch_owned::<Role>(controller, &client, &mut caches);
    let controller = watch_owned::<RoleBinding>(controller, &client, &mut caches);
    let controller = watch_owned::<ConfigMap>(controller, &client, &mut caches);
    let controller = watch_owned::<Deployment>(controller, &client, &mut caches);
    let controller = watch_owned::<Service>(controller, &client, &mut caches);
    let controller = watch_owned::<PodDisruptionBudget>(controller, &client, &mut caches);
    let controller = watch_owned::<HorizontalPodAutoscaler>(controller, &client, &mut caches);
    let controller = watch_owned::<CronJob>(controller, &client, &mut caches);
    // Backup Jobs carry the tenant's labels (from the CronJob's template): a finished one
    // updates `status.lastBackup*` right away instead of at the next resync.
    let controller = watch_owned::<Job>(controller, &client, &mut caches);
    // A tenant whose chain moved is reconciled again, so `status.lastAuditRecord` anchors
    // the records just written (a reconcile that changes nothing writes no record).
    let controller = match audit.moved {
        Some(moved) => controller.reconcile_on(futures::stream::unfold(moved, |mut rx| async {
            rx.recv()
                .await
                .map(|tenant| (ObjectRef::<DeserializeGuard<VideoTenant>>::new(&tenant), rx))
        })),
        None => controller,
    };
    let ctx = Arc::new(
        Context::new(client.clone(), metrics, config, cloud)
            .with_audit(audit.trail, audit.heads)
            .with_caches(caches)
            .with_tenants(controller.store()),
    );
    let recordings = Controller::new(
        Api::<DeserializeGuard<Recording>>::all(client.clone()),
        watcher::Config::default(),
    )
    .shutdown_on_signal()
    .run(recording::reconcile, recording::error_policy, ctx.clone())
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "recording reconcile loop reported an error");
        }
    });
    ready.store(true, Ordering::Relaxed);
    tracing::info!("videotenant and recording controllers started");
    let tenants = controller
        .shutdown_on_signal()
        .run(tenant::reconcile, tenant::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                // A failing watch leaves its cache (and the reconciles waiting on it) behind.
                Err(controller::Error::QueueError(error)) => {
                    tracing::warn!(%error, "a watch of tenant objects failed; retrying");
                }
                Err(error) => tracing::debug!(%error, "reconcile loop reported an error"),
                Ok(_) => {}
            }
        });
    tokio::join!(tenants, recordings);
    tracing::info!("controllers stopped");
    Ok(())
}

/// Re-reconciles the owning tenant when an object it owns changes, and keeps what the
/// watch sees in `caches` for reconciles to read (managed fields dropped: never read,
/// and a large part of each object).
///
/// `Controller::owns` cannot be used: it maps owner references into the child's
/// namespace, which never matches a cluster-scoped `VideoTenant`.
fn watch_owned<K>(
    controller: Controller<DeserializeGuard<VideoTenant>>,
    client: &Client,
    caches: &mut Caches,
) -> Controller<DeserializeGuard<VideoTenant>>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let selector = format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE);
    let (store, writer) = reflector::store::<K>();
    caches.insert(store);
    let stream = watcher(
        Api::<K>::all(client.clone()),
        watcher::Config::default().labels(&selector),
    )
    .default_backoff()
    .modify(|obj: &mut K| obj.meta_mut().managed_fields = None)
    .reflect(writer)
    .touched_objects();
    controller.watches_stream(stream, |obj: K| {
        obj.labels()
            .get(labels::TENANT)
            .map(|tenant| ObjectRef::<DeserializeGuard<VideoTenant>>::new(tenant))
    })
}

#[cfg(test)]
mod tests {
    use super::{blank_quoted, event_note};

    #[test]
    fn quoted_values_never_reach_an_invalid_object_event() {
        assert_eq!(
            blank_quoted("invalid type: string \"Jane Doe 1970\", expected i64 at line 1"),
            "invalid type: string \"…\", expected i64 at line 1"
        );
        assert_eq!(blank_quoted("no quotes"), "no quotes");
    }

    #[test]
    fn long_event_notes_are_cut_within_the_api_limit_at_a_char_boundary() {
        assert_eq!(event_note("short".into()), "short");
        let note = "é".repeat(800); // 1600 bytes, two per character
        let cut = event_note(note);
        assert!(cut.len() <= 1000, "{} bytes", cut.len());
        assert!(cut.ends_with("..."));
        assert!(cut.trim_end_matches("...").chars().all(|c| c == 'é'));
    }
}
