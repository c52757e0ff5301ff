//! Applies what `build` produced, in an order that keeps the namespace safe: the
//! namespace and its deny-all policy exist before any workload, and objects the spec
//! no longer asks for are deleted. Records what changed for the Event and the status.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, Pod, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use sanctum_api::{KeyProvider, VideoTenant};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::build::{
    self, TenantKeyRef, backup, control_tls, restore_drill, signing_key, tenant_key,
};
use super::observe::{self, BackupRun, Observed};
use super::status;
use super::validate::{Validated, validate};
use super::{Error, now, publish, write_status};
use crate::cloud::buckets::{self, DesiredBucket};
use crate::cloud::keys::{self, LocalKeyError};
use crate::controller::Context;
use crate::controller::ssa;

mod bucket;
mod secrets;

/// Reconciles a tenant that is not being deleted.
pub async fn apply(tenant: &VideoTenant, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    let v = validate(
        tenant,
        &ctx.config.operator_namespace,
        &ctx.config.key_providers,
    )
    .map_err(|source| Error::InvalidSpec {
        tenant: name.clone(),
        source,
    })?;
    let mut run = Run {
        ctx,
        v: &v,
        changes: Vec::new(),
        owned: BTreeMap::new(),
    };
    run.check_namespace_ownership().await?;

    // The foundation first: the namespace and its deny-all policy exist before anything
    // runs in it, and the operator's own Secret rights before it reads a Secret.
    let settings = build::Settings {
        identity: ctx.config.identity.as_ref(),
        media: &ctx.config.media,
        backup: &ctx.config.backup,
    };
    let foundation = build::foundation(&v, settings.identity, settings.media);
    let policies = foundation.network_policies.len();
    run.apply_foundation(foundation).await?;

    // The Services that carry media ports out of the cluster: what the cluster assigns
    // them (node ports, a balancer's address) is what the media nodes must offer.
    let exposed = run.expose().await?;

    // Dereference: what is made once and then only read.
    let join_token_public_pem = run.ensure_signing_key(tenant).await?;
    let control_public_pem = run.ensure_control_key().await?;
    run.ensure_control_tls().await?;
    let (key, key_secret) = run.ensure_tenant_key(tenant).await?;
    let bucket = run.ensure_bucket(tenant, &key).await?;
    run.escrow_data_key(&key_secret).await?;
    let refs = build::Refs {
        join_token_public_pem,
        control_public_pem,
        key: key.clone(),
        bucket: bucket.clone(),
        exposed,
    };

    // Then what runs in the namespace.
    let workloads = build::workloads(&v, &refs, settings);
    let mut observed = Observed {
        network_policies: policies,
        key: Some(key),
        bucket: Some(bucket),
        ..Default::default()
    };
    run.apply(&run.api::<ConfigMap>(), workloads.public_keys)
        .await?;
    for region in workloads.regions {
        let deployment = run
            .apply(&run.api::<Deployment>(), region.deployment)
            .await?;
        run.apply(&run.api::<Service>(), region.service).await?;
        run.apply(&run.api::<Service>(), region.peers).await?;
        run.apply(&run.api::<PodDisruptionBudget>(), region.pdb)
            .await?;
        if let Some(hpa) = region.hpa {
            run.apply(&run.api::<HorizontalPodAutoscaler>(), hpa)
                .await?;
        }
        let media = region
            .advertise
            .as_ref()
            .and_then(|a| build::expose::describe(&v, a));
        let (counts, rolled_out) = observe::observe_region(&region.region, &deployment, media);
        if region.advertise.is_none() {
            observed.unexposed.push(region.region.clone());
        } else if !rolled_out {
            observed.rolling_out.push(region.region.clone());
        }
        observed.regions.push(counts);
    }
    let jobs = if workloads.backup.is_some() || workloads.drill.is_some() {
        run.backup_jobs().await?
    } else {
        Vec::new()
    };
    if let Some(objects) = workloads.backup {
        run.apply(&run.api::<ServiceAccount>(), objects.service_account)
            .await?;
        let cron_job = run.apply(&run.api::<CronJob>(), objects.cron_job).await?;
        let reported = tenant.status.as_ref().map(|s| Reported {
            time: s.last_backup_time.as_ref(),
            objects: s.last_backup_objects,
        });
        observed.last_backup = run
            .last_run(&cron_job, backup::BACKUP_NAME, reported, &jobs)
            .await?;
    }
    if let Some(drill) = workloads.drill {
        run.apply(&run.api::<ServiceAccount>(), drill.service_account)
            .await?;
        let cron_job = run.apply(&run.api::<CronJob>(), drill.cron_job).await?;
        let reported = tenant.status.as_ref().map(|s| Reported {
            time: s.last_restore_drill_time.as_ref(),
            objects: s.last_restore_drill_objects,
        });
        observed.drills_scheduled = true;
        observed.last_drill = run
            .last_run(&cron_job, restore_drill::DRILL_NAME, reported, &jobs)
            .await?;
        observed.drill_baseline = observe::last_success_or_start(&cron_job, &jobs);
    }
    // Whatever the tenant's label marks and this pass did not apply is no longer wanted:
    // a removed region, an emptied allowance, a backup schedule taken out.
    run.prune_unowned().await?;

    let api = Api::<VideoTenant>::all(ctx.client.clone());
    write_status(
        &api,
        tenant,
        status::converged(tenant, &v, &observed, &now()),
        ctx,
    )
    .await?;
    let version = tenant_key::current_version(&key_secret);
    let created = version
        .and_then(|n| {
            key_secret
                .annotations()
                .get(&tenant_key::created_annotation(n))
        })
        .and_then(|t| t.parse::<Timestamp>().ok());
    if let Some(created) = created {
        ctx.metrics
            .data_key(&name, created.as_second(), v.spec.encryption.rotation_days);
    }
    if !run.changes.is_empty() {
        info!(changes = run.changes.len(), "applied changes");
        let note = run.changes.join(", ");
        publish(ctx, tenant, EventType::Normal, "Applied", "Reconcile", note).await;
    }
    if let Some(run) = &observed.last_backup {
        if run.succeeded {
            ctx.metrics
                .backup_succeeded_at(&name, run.finished.0.as_second());
        }
        // After the status write, so the next reconcile finds the run there; the context
        // remembers it too, for a reconcile that starts from a status read before the write.
        let reported = tenant.status.as_ref();
        if run.is_new(reported.and_then(|s| s.last_backup_time.as_ref()))
            && ctx.first_report(&name, &run.job)
        {
            report_backup(ctx, tenant, run).await;
        }
    }
    if observed.drills_scheduled {
        ctx.metrics.drill_state(
            &name,
            observed.last_drill.as_ref().is_some_and(|r| !r.succeeded),
            observed.drill_baseline.as_ref().map(|t| t.0.as_second()),
        );
    } else {
        ctx.metrics.forget_drills(&name);
    }
    if let Some(run) = &observed.last_drill {
        let reported = tenant.status.as_ref();
        if run.is_new(reported.and_then(|s| s.last_restore_drill_time.as_ref()))
            && ctx.first_report(&name, &run.job)
        {
            report_drill(ctx, tenant, run).await;
        }
    }
    Ok(Action::requeue(ctx.config.resync))
}

/// Event (and audit record) and metrics for a restore drill the status did not report yet.
async fn report_drill(ctx: &Context, tenant: &VideoTenant, run: &BackupRun) {
    ctx.metrics
        .drill_finished(&tenant.name_any(), run.succeeded);
    let (kind, reason, note) = if run.succeeded {
        info!(job = %run.job, "restore drill succeeded");
        // The drill's Job always has key access, so any restored object means it opened
        // a sealed recording (or failed); an empty backup has nothing to open.
        let note = match run.objects {
            Some(0) => format!(
                "restore drill {} restored 0 objects: the backup holds no recording to open",
                run.job
            ),
            Some(n) => format!(
                "restore drill {} restored {n} objects, every SHA-256 matching, and opened a sealed recording",
                run.job
            ),
            None => format!("restore drill {} succeeded", run.job),
        };
        (EventType::Normal, "RestoreDrillSucceeded", note)
    } else {
        let error = run.error.as_deref().unwrap_or("no reason given");
        warn!(job = %run.job, error, "restore drill failed");
        (
            EventType::Warning,
            "RestoreDrillFailed",
            format!("restore drill {} failed: {error}", run.job),
        )
    };
    publish(ctx, tenant, kind, reason, "RestoreDrill", note).await;
}

/// Event (and audit record) and metrics for a backup run the status did not report yet.
async fn report_backup(ctx: &Context, tenant: &VideoTenant, run: &BackupRun) {
    ctx.metrics
        .backup_finished(&tenant.name_any(), run.succeeded);
    if run.succeeded {
        let objects = run
            .objects
            .map_or_else(|| "an unknown number of".to_string(), |n| n.to_string());
        info!(job = %run.job, "backup succeeded");
        let note = format!(
            "backup job {} finished: {objects} recording objects",
            run.job
        );
        publish(
            ctx,
            tenant,
            EventType::Normal,
            "BackupSucceeded",
            "Backup",
            note,
        )
        .await;
    } else {
        let error = run.error.as_deref().unwrap_or("no reason given");
        warn!(job = %run.job, error, "backup failed");
        let note = format!("backup job {} failed: {error}", run.job);
        publish(
            ctx,
            tenant,
            EventType::Warning,
            "BackupFailed",
            "Backup",
            note,
        )
        .await;
    }
}

/// The first IPv4 address of a balancer's DNS name (AWS names its balancers): media
/// candidates are addresses. `None` (the region keeps waiting) when it does not resolve yet.
async fn resolve(host: &str) -> Option<String> {
    match tokio::net::lookup_host((host, 0)).await {
        Ok(addrs) => {
            let mut v4: Vec<std::net::IpAddr> =
                addrs.map(|a| a.ip()).filter(|ip| ip.is_ipv4()).collect();
            v4.sort();
            v4.first().map(|ip| ip.to_string())
        }
        Err(e) => {
            warn!(error = %e, "the load balancer's name does not resolve yet");
            None
        }
    }
}

/// What the status says of a CronJob's last run.
struct Reported<'a> {
    /// When it finished.
    time: Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Its object count.
    objects: Option<i64>,
}

/// One reconcile's view of the tenant namespace, and the changes it made.
struct Run<'a> {
    /// What this pass applied, by kind: everything else labelled for the tenant goes.
    owned: BTreeMap<&'static str, BTreeSet<String>>,
    ctx: &'a Context,
    v: &'a Validated,
    changes: Vec<String>,
}

impl Run<'_> {
    fn api<K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>>(
        &self,
    ) -> Api<K> {
        Api::namespaced(self.ctx.client.clone(), &self.v.namespace)
    }

    fn read_error(&self, what: &str) -> impl FnOnce(kube::Error) -> Error {
        let (tenant, what) = (self.v.name.clone(), what.to_string());
        move |source| Error::Read {
            tenant,
            what,
            source,
        }
    }

    /// Refuses to take over a namespace made by someone else or by another tenant.
    ///
    /// The cache holds only namespaces this operator labelled; one it does not hold is
    /// read from the API server, where someone else's would be found.
    async fn check_namespace_ownership(&self) -> Result<(), Error> {
        let cached = self
            .ctx
            .caches
            .get::<Namespace>(&self.v.namespace, None)
            .flatten();
        let existing = match cached {
            Some(ns) => Some(ns),
            None => Api::<Namespace>::all(self.ctx.client.clone())
                .get_opt(&self.v.namespace)
                .await
                .map_err(self.read_error("namespace"))?,
        };
        if let Some(ns) = existing
            && !build::is_owned_by(&ns, &self.v.owner.uid)
        {
            return Err(Error::NamespaceConflict {
                tenant: self.v.name.clone(),
                namespace: self.v.namespace.clone(),
            });
        }
        Ok(())
    }

    async fn apply<K>(&mut self, api: &Api<K>, desired: K) -> Result<K, Error>
    where
        K: Resource<DynamicType = ()>
            + k8s_openapi::Resource
            + Clone
            + Serialize
            + DeserializeOwned
            + Debug
            + 'static,
    {
        let name = desired.name_any();
        let cached = self
            .ctx
            .caches
            .get::<K>(&name, desired.meta().namespace.as_deref());
        let applied = ssa::apply(api, desired, cached)
            .await
            .map_err(|source| Error::Apply {
                tenant: self.v.name.clone(),
                kind: K::kind(&()).to_string(),
                name: name.clone(),
                source,
            })?;
        if applied.changed {
            self.changes
                .push(format!("applied {}/{}", K::kind(&()), name));
        }
        self.owned
            .entry(<K as k8s_openapi::Resource>::KIND)
            .or_default()
            .insert(name);
        Ok(applied.object)
    }

    /// Applies each exposed region's Service and reads back what the cluster assigned it.
    async fn expose(&mut self) -> Result<BTreeMap<String, build::expose::Exposed>, Error> {
        let mut exposed = BTreeMap::new();
        for region in &self.v.spec.media.regions {
            let Some(service) = build::expose::build_exposure_service(self.v, region) else {
                continue;
            };
            let applied = self.apply(&self.api::<Service>(), service).await?;
            let (udp_node_port, tcp_node_port) = build::expose::node_ports(&applied);
            let address = match build::expose::balancer_ingress(&applied) {
                Some(build::expose::BalancerIngress::Ip(ip)) => Some(ip),
                Some(build::expose::BalancerIngress::Hostname(host)) => resolve(&host).await,
                None => None,
            };
            exposed.insert(
                region.name.clone(),
                build::expose::Exposed {
                    address,
                    udp_node_port,
                    tcp_node_port,
                },
            );
        }
        Ok(exposed)
    }

    /// The foundation: namespace, NetworkPolicies, quota, limits, the media nodes' account
    /// and the operator's own binding.
    async fn apply_foundation(&mut self, f: build::Foundation) -> Result<(), Error> {
        let namespaces = Api::<Namespace>::all(self.ctx.client.clone());
        self.apply(&namespaces, f.namespace).await?;
        for policy in f.network_policies {
            self.apply(&self.api::<NetworkPolicy>(), policy).await?;
        }
        self.apply(&self.api::<ResourceQuota>(), f.quota).await?;
        self.apply(&self.api::<LimitRange>(), f.limit_range).await?;
        self.apply(&self.api::<ServiceAccount>(), f.service_account)
            .await?;
        if let Some(binding) = f.operator_binding {
            self.apply(&self.api::<RoleBinding>(), binding).await?;
        }
        Ok(())
    }

    /// Deletes every object of the tenant's kinds that carries its label and this pass
    /// did not apply. Secrets (made once), Jobs and Pods (made by controllers) are not
    /// among them.
    async fn prune_unowned(&mut self) -> Result<(), Error> {
        let selector = build::tenant_selector(self.v);
        self.prune_kind::<NetworkPolicy>(&selector).await?;
        self.prune_kind::<RoleBinding>(&selector).await?;
        self.prune_kind::<Role>(&selector).await?;
        self.prune_kind::<ConfigMap>(&selector).await?;
        self.prune_kind::<HorizontalPodAutoscaler>(&selector)
            .await?;
        self.prune_kind::<PodDisruptionBudget>(&selector).await?;
        self.prune_kind::<Service>(&selector).await?;
        self.prune_kind::<Deployment>(&selector).await?;
        self.prune_kind::<CronJob>(&selector).await?;
        self.prune_kind::<ServiceAccount>(&selector).await?;
        Ok(())
    }

    async fn prune_kind<K>(&mut self, selector: &str) -> Result<(), Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + k8s_openapi::Resource
            + Clone
            + DeserializeOwned
            + Debug
            + 'static,
    {
        let keep = self
            .owned
            .get(<K as k8s_openapi::Resource>::KIND)
            .cloned()
            .unwrap_or_default();
        self.prune::<K>(selector, &keep).await
    }

    async fn prune<K>(&mut self, selector: &str, keep: &BTreeSet<String>) -> Result<(), Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug
            + 'static,
    {
        let cached = self.ctx.caches.matching::<K>(&self.v.namespace, selector);
        let deleted = ssa::prune(&self.api::<K>(), selector, keep, cached)
            .await
            .map_err(|source| Error::Prune {
                tenant: self.v.name.clone(),
                kind: K::kind(&()).to_string(),
                source,
            })?;
        self.changes.extend(
            deleted
                .into_iter()
                .map(|n| format!("deleted {}/{n}", K::kind(&()))),
        );
        Ok(())
    }

    /// The newest finished Job of one of the tenant's CronJobs (backup or restore drill).
    /// Reads its pod's termination message (what `--result-file` wrote) only for a run
    /// the status does not report yet; otherwise keeps what the status says.
    /// The tenant's backup and drill Jobs (from the store, or listed without one).
    async fn backup_jobs(&self) -> Result<Vec<Job>, Error> {
        let selector = backup::backup_objects_selector(self.v);
        Ok(
            match self
                .ctx
                .caches
                .matching::<Job>(&self.v.namespace, &selector)
            {
                Some(jobs) => jobs,
                None => {
                    self.api::<Job>()
                        .list(&ListParams::default().labels(&selector))
                        .await
                        .map_err(self.read_error("backup jobs"))?
                        .items
                }
            },
        )
    }

    async fn last_run(
        &self,
        cron_job: &CronJob,
        container: &str,
        reported: Option<Reported<'_>>,
        jobs: &[Job],
    ) -> Result<Option<BackupRun>, Error> {
        let Some(mut run) = observe::newest_finished(cron_job, jobs) else {
            return Ok(None);
        };
        if !run.is_new(reported.as_ref().and_then(|r| r.time)) {
            run.objects = reported.and_then(|r| r.objects);
            return Ok(Some(run));
        }
        let pods = self
            .api::<Pod>()
            .list(&ListParams::default().labels(&format!("job-name={}", run.job)))
            .await
            .map_err(self.read_error("backup pods"))?;
        observe::read_result(&mut run, &pods.items, container);
        Ok(Some(run))
    }
}
