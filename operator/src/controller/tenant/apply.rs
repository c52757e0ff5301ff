//! Applies what `build` produced, in an order that keeps the namespace safe: the
//! namespace and its deny-all policy exist before any workload, and objects the spec
//! no longer asks for are deleted. Records what changed for the Event and the status.

use std::collections::BTreeSet;
use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use sanctum_api::{VideoTenant, labels};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::info;

use super::build::{self, signing_key};
use super::status::{self, Observed};
use super::validate::{Validated, validate};
use super::{Error, now, publish, write_status};
use crate::controller::Context;
use crate::controller::ssa;

/// Reconciles a tenant that is not being deleted.
pub async fn apply(tenant: &VideoTenant, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    let v =
        validate(tenant, &ctx.config.operator_namespace).map_err(|source| Error::InvalidSpec {
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
    run.apply(&run.api::<Role>(), foundation.role).await?;
    run.apply(&run.api::<RoleBinding>(), foundation.role_binding)
        .await?;

    let public_pem = run.ensure_signing_key().await?;
    let config_map = signing_key::build_public_key_config_map(&v, &public_pem);
    let config_map = run.apply(&run.api::<ConfigMap>(), config_map).await?;

    let mut observed = Observed {
        network_policies: policies,
        ..Default::default()
    };
    let regions = build::regions(&v, &config_map);
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

    let api = Api::<VideoTenant>::all(ctx.client.clone());
    write_status(
        &api,
        tenant,
        status::converged(tenant, &v, &observed, &now()),
    )
    .await?;
    if !run.changes.is_empty() {
        info!(changes = run.changes.len(), "applied changes");
        let note = run.changes.join(", ");
        publish(ctx, tenant, EventType::Normal, "Applied", "Reconcile", note).await;
    }
    Ok(Action::requeue(ctx.config.resync))
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
    async fn check_namespace_ownership(&self) -> Result<(), Error> {
        let namespaces = Api::<Namespace>::all(self.ctx.client.clone());
        if let Some(ns) = namespaces
            .get_opt(&self.v.namespace)
            .await
            .map_err(self.read_error("namespace"))?
            && ns.labels().get(labels::TENANT) != Some(&self.v.name)
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
        K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
    {
        let name = desired.name_any();
        let applied = ssa::apply(api, desired)
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
            + Debug,
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
            + Debug,
    {
        let deleted = ssa::prune(&self.api::<K>(), selector, keep)
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

    /// Returns the tenant's join-token public key, creating the key pair on first use.
    /// An existing key is never replaced: tokens already issued must stay valid.
    async fn ensure_signing_key(&mut self) -> Result<String, Error> {
        let key_error = |source| Error::SigningKey {
            tenant: self.v.name.clone(),
            source,
        };
        let secrets = self.api::<Secret>();
        let secret = match secrets
            .get_opt(signing_key::SECRET_NAME)
            .await
            .map_err(self.read_error("signing key"))?
        {
            Some(existing) => existing,
            None => {
                let fresh = signing_key::generate_secret(self.v).map_err(key_error)?;
                let created =
                    ssa::create_once(&secrets, &fresh)
                        .await
                        .map_err(|source| Error::Apply {
                            tenant: self.v.name.clone(),
                            kind: "Secret".to_string(),
                            name: signing_key::SECRET_NAME.to_string(),
                            source,
                        })?;
                if created.changed {
                    self.changes
                        .push(format!("created Secret/{}", signing_key::SECRET_NAME));
                }
                created.object
            }
        };
        signing_key::public_key_pem(&secret).map_err(key_error)
    }
}
