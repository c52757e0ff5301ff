//! Applies what `build` produced, in an order that keeps the namespace safe: the
//! namespace and its deny-all policy exist before any workload, and objects the spec
//! no longer asks for are deleted. Records what changed for the Event and the status.

use std::collections::BTreeSet;
use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, Pod, ResourceQuota, Secret, Service, ServiceAccount,
};
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

use super::build::{self, TenantKeyRef, backup, control_tls, signing_key, tenant_key};
use super::status::{self, BackupRun, Observed};
use super::validate::{Validated, validate};
use super::{Error, now, publish, write_status};
use crate::cloud::buckets::{self, DesiredBucket};
use crate::cloud::keys::{self, LocalKeyError};
use crate::controller::Context;
use crate::controller::ssa;
use zeroize::Zeroizing;

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
    };

    run.check_namespace_ownership().await?;
    let foundation = build::foundation(&v);
    let namespaces = Api::<Namespace>::all(ctx.client.clone());
    run.apply(&namespaces, foundation.namespace).await?;
    let policies = foundation.network_policies.len();
    run.apply_all(foundation.network_policies, &build::tenant_selector(&v))
        .await?;
    run.apply(&run.api::<ResourceQuota>(), foundation.quota)
        .await?;
    run.apply(&run.api::<LimitRange>(), foundation.limit_range)
        .await?;
    run.apply(&run.api::<ServiceAccount>(), foundation.service_account)
        .await?;
    // The operator's own access to the tenant's Secrets, before any is read; earlier
    // versions bound a Role to the media nodes, which need none.
    let tenant_objects = build::tenant_selector(&v);
    let mut bindings = BTreeSet::new();
    if let Some(me) = &ctx.config.identity {
        run.apply(
            &run.api::<RoleBinding>(),
            build::build_operator_binding(&v, me),
        )
        .await?;
        bindings.insert(build::OPERATOR_BINDING.to_string());
    }
    run.prune::<RoleBinding>(&tenant_objects, &bindings).await?;
    run.prune::<Role>(&tenant_objects, &BTreeSet::new()).await?;

    let public_pem = run.ensure_signing_key().await?;
    let control_pem = run.ensure_control_key().await?;
    run.ensure_control_tls().await?;
    let config_map = signing_key::build_public_key_config_map(&v, &public_pem, &control_pem);
    let config_map = run.apply(&run.api::<ConfigMap>(), config_map).await?;

    let (key, key_secret) = run.ensure_tenant_key(tenant).await?;
    let bucket = run.ensure_bucket(tenant, &key).await?;
    run.escrow_data_key(&key_secret).await?;

    let mut observed = Observed {
        network_policies: policies,
        key: Some(key.clone()),
        bucket: Some(bucket),
        ..Default::default()
    };
    let regions = build::regions(&v, &config_map, &key, &ctx.config.media);
    let media = build::media_objects_selector(&v);
    let keep_hpas: BTreeSet<String> = regions
        .iter()
        .filter_map(|r| r.hpa.as_ref())
        .map(|h| h.name_any())
        .collect();
    let keep: BTreeSet<String> = regions.iter().map(|r| r.deployment.name_any()).collect();
    for region in regions {
        let deployment = run
            .apply(&run.api::<Deployment>(), region.deployment)
            .await?;
        run.apply(&run.api::<Service>(), region.service).await?;
        run.apply(&run.api::<PodDisruptionBudget>(), region.pdb)
            .await?;
        if let Some(hpa) = region.hpa {
            run.apply(&run.api::<HorizontalPodAutoscaler>(), hpa)
                .await?;
        }
        let (counts, rolled_out) = status::observe_region(&region.region, &deployment);
        if !rolled_out {
            observed.rolling_out.push(region.region.clone());
        }
        observed.regions.push(counts);
    }
    run.prune::<HorizontalPodAutoscaler>(&media, &keep_hpas)
        .await?;
    run.prune::<PodDisruptionBudget>(&media, &keep).await?;
    run.prune::<Service>(&media, &keep).await?;
    run.prune::<Deployment>(&media, &keep).await?;

    let backup_objects = backup::backup_objects_selector(&v);
    let bucket = observed.bucket.clone().unwrap_or_default();
    match backup::build_backup(&v, &ctx.config.backup, &bucket, &key) {
        Some(objects) => {
            run.apply(&run.api::<ServiceAccount>(), objects.service_account)
                .await?;
            let cron_job = run.apply(&run.api::<CronJob>(), objects.cron_job).await?;
            observed.last_backup = run.last_backup(&cron_job, tenant).await?;
        }
        None => {
            run.prune::<CronJob>(&backup_objects, &BTreeSet::new())
                .await?;
            run.prune::<ServiceAccount>(&backup_objects, &BTreeSet::new())
                .await?;
        }
    }

    let api = Api::<VideoTenant>::all(ctx.client.clone());
    write_status(
        &api,
        tenant,
        status::converged(tenant, &v, &observed, &now()),
        &ctx.heads,
    )
    .await?;
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
        if run.is_new(tenant.status.as_ref()) && ctx.first_report(&name, &run.job) {
            report_backup(ctx, tenant, run).await;
        }
    }
    Ok(Action::requeue(ctx.config.resync))
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

/// One reconcile's view of the tenant namespace, and the changes it made.
struct Run<'a> {
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
        K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug + 'static,
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
        Ok(applied.object)
    }

    async fn apply_all<K>(&mut self, desired: Vec<K>, selector: &str) -> Result<(), Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Serialize
            + DeserializeOwned
            + Debug
            + 'static,
    {
        let keep = ssa::names(&desired);
        let api = self.api::<K>();
        for object in desired {
            self.apply(&api, object).await?;
        }
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

    /// The newest finished Job of the tenant's backup CronJob. Reads its pod's termination
    /// message (what `sanctum backup --result-file` wrote) only for a run the status does
    /// not report yet; otherwise keeps what the status says.
    async fn last_backup(
        &self,
        cron_job: &CronJob,
        tenant: &VideoTenant,
    ) -> Result<Option<BackupRun>, Error> {
        let selector = backup::backup_objects_selector(self.v);
        let jobs = match self
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
        };
        let Some(mut run) = backup::newest_finished(cron_job, &jobs) else {
            return Ok(None);
        };
        if !run.is_new(tenant.status.as_ref()) {
            let status = tenant.status.as_ref();
            run.objects = status.and_then(|s| s.last_backup_objects);
            return Ok(Some(run));
        }
        let pods = self
            .api::<Pod>()
            .list(&ListParams::default().labels(&format!("job-name={}", run.job)))
            .await
            .map_err(self.read_error("backup pods"))?;
        backup::read_result(&mut run, &pods.items);
        Ok(Some(run))
    }

    /// The Secret `name` read through `secrets`, or, when there is none, the one `make`
    /// builds (its error turned into ours by `failed`), created once: never replaced, as
    /// it holds keys that must not change.
    async fn secret_once<E>(
        &mut self,
        secrets: &Api<Secret>,
        name: &str,
        what: &str,
        make: impl FnOnce() -> Result<Secret, E>,
        failed: impl FnOnce(E) -> Error,
    ) -> Result<Secret, Error> {
        if let Some(existing) = secrets.get_opt(name).await.map_err(self.read_error(what))? {
            return Ok(existing);
        }
        let created = ssa::create_once(secrets, &make().map_err(failed)?)
            .await
            .map_err(|source| Error::Apply {
                tenant: self.v.name.clone(),
                kind: "Secret".to_string(),
                name: name.to_string(),
                source,
            })?;
        if created.changed {
            self.changes.push(format!("created Secret/{name}"));
        }
        Ok(created.object)
    }

    /// Returns the tenant's join-token public key, creating the key pair on first use.
    /// An existing key is never replaced: tokens already issued must stay valid.
    async fn ensure_signing_key(&mut self) -> Result<String, Error> {
        let key_error = |source| Error::SigningKey {
            tenant: self.v.name.clone(),
            source,
        };
        let secrets = self.api::<Secret>();
        let v = self.v;
        let secret = self
            .secret_once(
                &secrets,
                signing_key::SECRET_NAME,
                "signing key",
                || signing_key::generate_secret(v),
                key_error,
            )
            .await?;
        signing_key::public_key_pem(&secret).map_err(key_error)
    }

    /// The tenant's control CA (made once, in the operator's namespace) and the media
    /// nodes' control certificate issued from it into the tenant namespace, re-issued when
    /// it nears expiry or comes from another CA.
    async fn ensure_control_tls(&mut self) -> Result<(), Error> {
        let namespace = self.ctx.config.operator_namespace.clone();
        let operator_secrets = Api::<Secret>::namespaced(self.ctx.client.clone(), &namespace);
        let name = control_tls::ca_secret_name(self.v);
        let tenant = self.v.name.clone();
        let tls_error = |source: control_tls::TlsError| Error::ControlTls {
            tenant: tenant.clone(),
            source,
        };
        let now = Timestamp::now();
        let v = self.v;
        let ca = self
            .secret_once(
                &operator_secrets,
                &name,
                "control CA",
                || control_tls::generate_ca_secret(v, &namespace, now),
                tls_error,
            )
            .await?;
        let secrets = self.api::<Secret>();
        let node = secrets
            .get_opt(sanctum_api::control::NODE_TLS_SECRET)
            .await
            .map_err(self.read_error("media control certificate"))?;
        if !node.is_some_and(|n| control_tls::node_secret_current(&n, &ca, now)) {
            let issued = control_tls::issue_node_secret(self.v, &ca, now).map_err(tls_error)?;
            self.apply(&secrets, issued).await?;
        }
        Ok(())
    }

    /// Returns the tenant's control public key, creating the key pair (in the operator's
    /// namespace) on first use; never replaced while the tenant lives.
    async fn ensure_control_key(&mut self) -> Result<String, Error> {
        let key_error = |source| Error::SigningKey {
            tenant: self.v.name.clone(),
            source,
        };
        let namespace = self.ctx.config.operator_namespace.clone();
        let secrets = Api::<Secret>::namespaced(self.ctx.client.clone(), &namespace);
        let name = signing_key::control_key_name(self.v);
        let v = self.v;
        let secret = self
            .secret_once(
                &secrets,
                &name,
                "control key",
                || signing_key::generate_control_secret(v, &namespace),
                key_error,
            )
            .await?;
        signing_key::public_key_pem(&secret).map_err(key_error)
    }

    /// Finds or makes the tenant's key-encryption key and its wrapped data key. The
    /// data-key Secret is created once; a new version is added when `rotationDays` have
    /// passed or the tenant's `sanctum.dev/rotate-data-key` annotation asks for one, and
    /// old versions stay for decrypting older recordings.
    async fn ensure_tenant_key(
        &mut self,
        tenant: &VideoTenant,
    ) -> Result<(TenantKeyRef, Secret), Error> {
        let name = self.v.name.clone();
        let spec = &self.v.spec.encryption;
        let cloud = &self.ctx.cloud;
        let key_err = |source| Error::Key {
            tenant: name.clone(),
            source,
        };
        let (arn, master) = match spec.provider {
            KeyProvider::Aws => {
                let key = keys::ensure_kms_key(
                    cloud,
                    &name,
                    &self.v.owner.uid,
                    spec.key_arn.as_deref(),
                    spec.rotation_days,
                )
                .await
                .map_err(key_err)?;
                (key.arn, None)
            }
            KeyProvider::Local => ("local".to_string(), Some(self.local_kek().await?)),
        };
        let mut key = TenantKeyRef {
            provider: spec.provider,
            arn,
            version: 1,
            secret: tenant_key::SECRET_NAME.into(),
        };
        let now = Timestamp::now();
        let secrets = self.api::<Secret>();
        let existing = secrets
            .get_opt(tenant_key::SECRET_NAME)
            .await
            .map_err(self.read_error("tenant key"))?;
        let Some(mut secret) = existing else {
            let wrapped = self
                .wrap_new_data_key(&key, master.as_ref().map(|m| m.as_slice()))
                .await?;
            let fresh =
                tenant_key::build_tenant_key_secret(self.v, &key, wrapped, &now.to_string());
            let created =
                ssa::create_once(&secrets, &fresh)
                    .await
                    .map_err(|source| Error::Apply {
                        tenant: name.clone(),
                        kind: "Secret".to_string(),
                        name: tenant_key::SECRET_NAME.to_string(),
                        source,
                    })?;
            if created.changed {
                self.changes
                    .push(format!("created Secret/{}", tenant_key::SECRET_NAME));
            }
            key.version = tenant_key::current_version(&created.object).unwrap_or(1);
            return Ok((key, created.object));
        };
        key.version = tenant_key::current_version(&secret).ok_or_else(|| Error::LocalKey {
            tenant: name.clone(),
            source: LocalKeyError::Unwrap,
        })?;
        let requested = tenant.annotations().get(tenant_key::ROTATE_REQUEST);
        if tenant_key::rotation_due(&secret, key.version, requested, spec.rotation_days, now) {
            let next = TenantKeyRef {
                version: key.version + 1,
                ..key.clone()
            };
            let wrapped = self
                .wrap_new_data_key(&next, master.as_ref().map(|m| m.as_slice()))
                .await?;
            let patch =
                tenant_key::rotation_patch(&secret, &next, wrapped, requested, &now.to_string());
            match secrets
                .patch(
                    tenant_key::SECRET_NAME,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(rotated) => secret = rotated,
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    return Err(Error::StaleRead { tenant: name });
                }
                Err(source) => {
                    return Err(Error::Apply {
                        tenant: name,
                        kind: "Secret".into(),
                        name: tenant_key::SECRET_NAME.into(),
                        source,
                    });
                }
            }
            info!(version = next.version, "rotated the tenant data key");
            self.changes
                .push(format!("rotated the tenant data key to v{}", next.version));
            key = next;
        }
        Ok((key, secret))
    }

    async fn wrap_new_data_key(
        &self,
        key: &TenantKeyRef,
        master: Option<&[u8]>,
    ) -> Result<Vec<u8>, Error> {
        let name = &self.v.name;
        match master {
            Some(master) => {
                keys::new_local_data_key(master, name).map_err(|source| Error::LocalKey {
                    tenant: name.clone(),
                    source,
                })
            }
            None => keys::new_kms_data_key(
                &self.ctx.cloud,
                &keys::TenantKey {
                    arn: key.arn.clone(),
                },
                keys::KeyContext {
                    tenant: name,
                    uid: &self.v.owner.uid,
                },
            )
            .await
            .map_err(|source| Error::Key {
                tenant: name.clone(),
                source,
            }),
        }
    }

    /// Keeps a copy of every wrapped data-key version in the operator's namespace, so
    /// recordings stay readable after the tenant namespace is gone (deletion policy
    /// `Retain`). Only ciphertext is copied: it is useless without the KMS or master key.
    async fn escrow_data_key(&mut self, secret: &Secret) -> Result<(), Error> {
        let namespace = self.ctx.config.operator_namespace.clone();
        let escrow = tenant_key::build_escrow_secret(self.v, &namespace, secret);
        let api = Api::<Secret>::namespaced(self.ctx.client.clone(), &namespace);
        self.apply(&api, escrow).await?;
        Ok(())
    }

    /// The `local` provider's key-encryption key of this tenant: made once in the
    /// operator's namespace, and copied into the tenant namespace for its media nodes (a
    /// copy changed by hand is repaired).
    async fn local_kek(&mut self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let namespace = self.ctx.config.operator_namespace.clone();
        let operator_secrets = Api::<Secret>::namespaced(self.ctx.client.clone(), &namespace);
        let name = tenant_key::local_kek_name(self.v);
        let tenant = self.v.name.clone();
        let v = self.v;
        let authority = self
            .secret_once(
                &operator_secrets,
                &name,
                "local key-encryption key",
                || {
                    keys::random_key()
                        .map(|key| tenant_key::build_local_kek_secret(v, &namespace, &key))
                },
                |source| Error::LocalKey {
                    tenant: tenant.clone(),
                    source,
                },
            )
            .await?;
        let key = tenant_key::local_key_bytes(&authority)
            .map(|b| Zeroizing::new(b.to_vec()))
            .ok_or_else(|| Error::LocalKey {
                tenant: tenant.clone(),
                source: LocalKeyError::BadMasterKey,
            })?;
        // Server-side applied like every owned object, so a copy changed by hand is repaired.
        let copy = tenant_key::build_local_key_copy(self.v, &key);
        let secrets = self.api::<Secret>();
        self.apply(&secrets, copy).await?;
        Ok(key)
    }

    /// Buckets this tenant may never use as its recordings bucket: the audit bucket, its
    /// own backup destination, and every other tenant's bucket and backup destination
    /// this replica knows of.
    fn reserved_buckets(&self) -> Vec<(String, String)> {
        let mut reserved = Vec::new();
        if let Some(audit) = &self.ctx.config.media.audit_bucket {
            reserved.push((audit.clone(), "the audit bucket".to_string()));
        }
        if let Some(backup) = &self.v.spec.backup {
            reserved.push((
                backup.destination.bucket.clone(),
                "this tenant's backup destination".into(),
            ));
        }
        for other in self.ctx.tenants.iter().flat_map(|s| s.state()) {
            if other.uid().as_deref() == Some(self.v.owner.uid.as_str()) {
                continue;
            }
            let what = format!("a bucket of tenant {}", other.name_any());
            let names = [
                other.status.as_ref().and_then(|s| s.bucket.clone()),
                other.spec.storage.bucket.clone(),
                other
                    .spec
                    .backup
                    .as_ref()
                    .map(|b| b.destination.bucket.clone()),
            ];
            reserved.extend(names.into_iter().flatten().map(|n| (n, what.clone())));
        }
        reserved
    }

    /// Provisions the recordings bucket; a setting found changed by hand is repaired and
    /// reported with a Warning Event.
    async fn ensure_bucket(
        &mut self,
        tenant: &VideoTenant,
        key: &TenantKeyRef,
    ) -> Result<String, Error> {
        let storage = &self.v.spec.storage;
        let cloud = &self.ctx.cloud;
        let name = storage
            .bucket
            .clone()
            .unwrap_or_else(|| buckets::default_name(&self.v.name, &self.v.owner.uid));
        let want = DesiredBucket {
            name: name.clone(),
            region: storage
                .region
                .clone()
                .unwrap_or_else(|| cloud.region.clone()),
            tenant: self.v.name.clone(),
            tenant_uid: self.v.owner.uid.clone(),
            reserved: self.reserved_buckets(),
            configured: false,
            kms_key_arn: (key.provider == KeyProvider::Aws).then(|| key.arn.clone()),
            retention_days: storage.retention_days,
            object_lock: storage.object_lock.clone(),
            write_once: false,
        };
        let report = buckets::ensure_bucket(cloud, &want)
            .await
            .map_err(|source| Error::Bucket {
                tenant: self.v.name.clone(),
                bucket: name.clone(),
                source,
            })?;
        if report.created {
            self.changes.push(format!("created bucket {name}"));
        }
        if !report.repaired.is_empty() {
            let note = format!(
                "bucket {name} had drifted; repaired: {}",
                report.repaired.join(", ")
            );
            warn!(bucket = %name, repaired = ?report.repaired, "bucket drift repaired");
            publish(
                self.ctx,
                tenant,
                EventType::Warning,
                "BucketDriftRepaired",
                "Reconcile",
                note,
            )
            .await;
            self.changes.push(format!("repaired bucket {name}"));
        }
        Ok(name)
    }
}
