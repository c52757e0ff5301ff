//! The `VideoTenant` reconciler: validate → build → apply → status, behind a finalizer.
//!
//! Only this module and `apply` talk to the API; validation and building are pure.
//! It must never regenerate key material, adopt a namespace it does not own, or write
//! when nothing changed.

mod apply;
pub mod build;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod observe;
pub mod status;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Resource, ResourceExt};
use sanctum_api::conditions::reasons;
use sanctum_api::{DeletionPolicy, KeyProvider, Recording, VideoTenant, VideoTenantStatus, labels};
use tracing::{info, instrument, warn};

use super::Context;
use crate::cloud::CloudError;
use crate::cloud::keys;
use crate::cloud::keys::LocalKeyError;
use crate::controller::ssa;
use build::signing_key::KeyError;
use k8s_openapi::api::core::v1::Secret;
use validate::Invalid;

/// Finalizer that runs cleanup before a tenant disappears.
pub const FINALIZER: &str = "sanctum.dev/cleanup";
/// Controller label in metrics.
const CONTROLLER: &str = "videotenant";

/// Why a tenant reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec cannot be reconciled as written.
    #[error("tenant {tenant} is invalid: {source}")]
    InvalidSpec {
        /// Tenant name.
        tenant: String,
        /// What is wrong.
        source: Invalid,
    },
    /// The control CA or the media nodes' control certificate could not be made.
    #[error("failed to make the control certificates of tenant {tenant}: {source}")]
    ControlTls {
        /// Tenant name.
        tenant: String,
        /// Why.
        #[source]
        source: build::control_tls::TlsError,
    },
    /// A namespace of the tenant's namespace name exists and is not owned by this tenant
    /// (its uid): someone else's, made in advance, or an earlier tenant's.
    #[error(
        "namespace {namespace} already exists and is not managed by tenant {tenant} (it has no controller owner reference to this tenant's uid); nothing is written into it"
    )]
    NamespaceConflict {
        /// Tenant name.
        tenant: String,
        /// The namespace.
        namespace: String,
    },
    /// Reading an object failed.
    #[error("failed to read {what} for tenant {tenant}: {source}")]
    Read {
        /// Tenant name.
        tenant: String,
        /// What was read.
        what: String,
        /// API error.
        source: kube::Error,
    },
    /// A server-side apply failed.
    #[error("failed to apply {kind} {name} for tenant {tenant}: {source}")]
    Apply {
        /// Tenant name.
        tenant: String,
        /// Object kind.
        kind: String,
        /// Object name.
        name: String,
        /// API error.
        source: kube::Error,
    },
    /// Deleting objects the tenant no longer wants failed.
    #[error("failed to delete stale {kind} objects of tenant {tenant}: {source}")]
    Prune {
        /// Tenant name.
        tenant: String,
        /// Object kind.
        kind: String,
        /// API error.
        source: kube::Error,
    },
    /// The join-token key could not be made or read.
    #[error("join-token signing key of tenant {tenant}: {source}")]
    SigningKey {
        /// Tenant name.
        tenant: String,
        /// What went wrong.
        source: KeyError,
    },
    /// The tenant key could not be found or made in KMS.
    #[error("KMS key of tenant {tenant}: {source}")]
    Key {
        /// Tenant name.
        tenant: String,
        /// What KMS said.
        source: CloudError,
    },
    /// The local key provider failed.
    #[error("local key of tenant {tenant}: {source}")]
    LocalKey {
        /// Tenant name.
        tenant: String,
        /// What failed.
        source: LocalKeyError,
    },
    /// The recordings bucket could not be provisioned.
    #[error("bucket {bucket} of tenant {tenant}: {source}")]
    Bucket {
        /// Tenant name.
        tenant: String,
        /// Bucket name.
        bucket: String,
        /// What S3 said.
        source: CloudError,
    },
    /// Writing the status failed.
    #[error("failed to update the status of tenant {tenant}: {source}")]
    PatchStatus {
        /// Tenant name.
        tenant: String,
        /// API error.
        source: kube::Error,
    },
    /// Deleting a tenant with recordings under legal hold is refused.
    #[error("tenant {tenant} cannot be deleted: {count} recordings are under legal hold")]
    LegalHold {
        /// Tenant name.
        tenant: String,
        /// Recordings on hold.
        count: usize,
    },
    /// Deletion waits for the namespace to finish terminating.
    #[error("waiting for namespace {namespace} to terminate")]
    NamespaceTerminating {
        /// The namespace.
        namespace: String,
    },
    /// The object changed between read and write; the next pass reads it again.
    #[error("tenant {tenant} changed while being reconciled")]
    StaleRead {
        /// Tenant name.
        tenant: String,
    },
    /// Adding or removing the finalizer failed.
    #[error("finalizer of tenant {tenant}: {message}")]
    Finalizer {
        /// Tenant name.
        tenant: String,
        /// What failed.
        message: String,
    },
}

impl Error {
    /// Short category for the Event reason and the failure metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidSpec { .. } => reasons::INVALID_SPEC,
            Error::NamespaceConflict { .. } => "NamespaceConflict",
            Error::Read { .. } => "ReadFailed",
            Error::Apply { .. } => "ApplyFailed",
            Error::Prune { .. } => "PruneFailed",
            Error::SigningKey { .. } => "SigningKeyFailed",
            Error::ControlTls { .. } => "ControlTlsFailed",
            Error::PatchStatus { .. } => "StatusFailed",
            Error::Key { .. } | Error::LocalKey { .. } => "KeyFailed",
            Error::Bucket { .. } => "BucketFailed",
            Error::LegalHold { .. } => "LegalHold",
            Error::NamespaceTerminating { .. } => "NamespaceTerminating",
            Error::StaleRead { .. } => "StaleRead",
            Error::Finalizer { .. } => "FinalizerFailed",
        }
    }

    /// Errors a retry cannot fix: they wait for a person to change something.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::InvalidSpec { .. }
            | Error::NamespaceConflict { .. }
            | Error::LegalHold { .. } => true,
            Error::SigningKey { source, .. } => {
                matches!(source, KeyError::Unreadable | KeyError::Immutable)
            }
            Error::Apply { source, .. } => is_rejected(source),
            Error::Key { source, .. } | Error::Bucket { source, .. } => source.is_permanent(),
            Error::LocalKey { source, .. } => !matches!(source, LocalKeyError::Random),
            _ => false,
        }
    }

    /// Expected waits, not failures: no Warning Event.
    fn is_waiting(&self) -> bool {
        matches!(
            self,
            Error::NamespaceTerminating { .. } | Error::StaleRead { .. }
        )
    }

    fn from_finalizer(tenant: &str, error: finalizer::Error<Error>) -> Self {
        match error {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            // The finalizer patch tests the finalizer list it read; a 422 means the object
            // changed since (usually: this controller added the finalizer a moment ago and
            // the watch had not delivered it yet). Retry with the fresh object.
            finalizer::Error::AddFinalizer(kube::Error::Api(status)) if status.code == 422 => {
                Error::StaleRead {
                    tenant: tenant.to_string(),
                }
            }
            other => Error::Finalizer {
                tenant: tenant.to_string(),
                message: other.to_string(),
            },
        }
    }
}

/// An API error that retrying the same request cannot fix (the server refused the object).
fn is_rejected(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 422 || s.code == 403 || s.code == 400)
}

/// Reconciles one tenant; the entry point the controller calls.
#[instrument(skip(guard, ctx), fields(tenant = %guard.name_any()))]
pub async fn reconcile(
    guard: Arc<DeserializeGuard<VideoTenant>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let Some(tenant) = super::guarded(&ctx, &guard, CONTROLLER).await else {
        return Ok(Action::await_change());
    };
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let name = tenant.name_any();
    let api = Api::<VideoTenant>::all(ctx.client.clone());
    let deleting = tenant.meta().deletion_timestamp.is_some();
    let first = tenant
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .is_none();
    let result = async {
        if first && !deleting {
            write_status(&api, &tenant, status::initial(&tenant, &now()), &ctx).await?;
        }
        finalizer(&api, FINALIZER, tenant.clone(), |event| async {
            match event {
                finalizer::Event::Apply(t) => apply::apply(&t, &ctx).await,
                finalizer::Event::Cleanup(t) => cleanup(&t, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::from_finalizer(&name, e))
    }
    .await;
    match &result {
        Ok(_) => ctx.reset_backoff(&name),
        Err(error) => {
            ctx.metrics.reconcile_failed(CONTROLLER, error.reason());
            if !error.is_waiting() {
                warn!(%error, reason = error.reason(), "reconcile failed");
                let (reason, note) = (error.reason(), error.to_string());
                if ctx.new_failure(&name, &note) {
                    publish(&ctx, &tenant, EventType::Warning, reason, "Reconcile", note).await;
                } else {
                    event(&ctx, &tenant, EventType::Warning, reason, "Reconcile", note).await;
                }
                if !deleting {
                    let failed = status::failed(&tenant, error, &now());
                    if let Err(e) = write_status(&api, &tenant, failed, &ctx).await {
                        warn!(error = %e, "could not record the failure in status");
                    }
                }
            }
        }
    }
    result
}

/// What to do after a failed reconcile: wait for a change, or retry with backoff.
pub fn error_policy(
    tenant: Arc<DeserializeGuard<VideoTenant>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    if matches!(error, Error::StaleRead { .. }) {
        return Action::requeue(Duration::from_millis(200));
    }
    if error.is_waiting() {
        return Action::requeue(Duration::from_secs(2));
    }
    if matches!(error, Error::InvalidSpec { .. }) {
        return Action::await_change();
    }
    if error.is_permanent() {
        return Action::requeue(ctx.config.resync);
    }
    Action::requeue(ctx.next_backoff(&tenant.name_any()))
}

/// Deletion: refuse while recordings are on legal hold, then remove the namespace and
/// wait until it is gone so the finalizer is released only after cleanup completed.
async fn cleanup(tenant: &VideoTenant, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    let namespace = tenant
        .status
        .as_ref()
        .and_then(|s| s.namespace.clone())
        .unwrap_or_else(|| tenant.namespace_name());
    let read_err = |what: &str| {
        let (tenant, what) = (name.clone(), what.to_string());
        move |source| Error::Read {
            tenant,
            what,
            source,
        }
    };
    let recordings = Api::<Recording>::namespaced(ctx.client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .map_err(read_err("recordings"))?;
    let held = recordings
        .items
        .iter()
        .filter(|r| r.spec.legal_hold)
        .count();
    if held > 0 {
        return Err(Error::LegalHold {
            tenant: name,
            count: held,
        });
    }
    if tenant.spec.encryption.deletion_policy == DeletionPolicy::CryptoShred {
        crypto_shred(tenant, ctx).await?;
    }
    let namespaces = Api::<Namespace>::all(ctx.client.clone());
    if let Some(ns) = namespaces
        .get_opt(&namespace)
        .await
        .map_err(read_err("namespace"))?
        && build::is_owned_by(&ns, &tenant.uid().unwrap_or_default())
    {
        if ns.metadata.deletion_timestamp.is_none() {
            namespaces
                .delete(&namespace, &DeleteParams::foreground())
                .await
                .map_err(read_err("namespace"))?;
            info!(%namespace, "deleting tenant namespace");
            publish(
                ctx,
                tenant,
                EventType::Normal,
                "Deleting",
                "Cleanup",
                format!("deleting namespace {namespace}"),
            )
            .await;
        }
        return Err(Error::NamespaceTerminating { namespace });
    }
    // The control key and CA serve media nodes that are gone now.
    let uid = tenant.uid().unwrap_or_default();
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.config.operator_namespace);
    for secret in [
        build::signing_key::control_key_name_for(&name, &uid),
        build::control_tls::ca_secret_name_for(&name, &uid),
    ] {
        match secrets.delete(&secret, &DeleteParams::default()).await {
            Ok(_) => info!(%secret, "deleted a recording control Secret"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(Error::Read {
                    tenant: name,
                    what: "control Secrets".into(),
                    source,
                });
            }
        }
    }
    info!("tenant cleaned up");
    publish(
        ctx,
        tenant,
        EventType::Normal,
        "Deleted",
        "Cleanup",
        format!("namespace {namespace} removed"),
    )
    .await;
    ctx.metrics.forget_tenant(&name);
    Ok(Action::await_change())
}

/// Destroys every copy of the tenant's keys that the operator made: the escrowed wrapped
/// data keys and, for a KMS key Sanctum created, the KMS key itself (the wrapped key in the
/// tenant namespace goes with the namespace). Idempotent, so a crash midway is finished by
/// the next attempt.
async fn crypto_shred(tenant: &VideoTenant, ctx: &Context) -> Result<(), Error> {
    let name = tenant.name_any();
    let status = tenant.status.clone().unwrap_or_default();
    let escrow = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.config.operator_namespace);
    let selector = format!(
        "{}={name},sanctum.dev/tenant-uid={}",
        labels::TENANT,
        tenant.uid().unwrap_or_default()
    );
    let deleted = ssa::prune(&escrow, &selector, &Default::default(), None)
        .await
        .map_err(|source| Error::Prune {
            tenant: name.clone(),
            kind: "Secret".into(),
            source,
        })?;
    if !deleted.is_empty() {
        info!(secrets = ?deleted, "deleted escrowed data keys");
    }
    let own_kms_key = tenant.spec.encryption.provider == KeyProvider::Aws
        && tenant.spec.encryption.key_arn.is_none();
    if let (true, Some(arn)) = (own_kms_key, &status.key_arn) {
        let uid = tenant.uid().unwrap_or_default();
        let shred = keys::schedule_key_deletion(&ctx.cloud, &name, &uid, arn)
            .await
            .map_err(|source| Error::Key {
                tenant: name.clone(),
                source,
            })?;
        match shred {
            keys::Shred::Scheduled => {
                let note = format!(
                    "KMS key {arn} scheduled for deletion in 7 days; recordings are crypto-shredded"
                );
                publish(
                    ctx,
                    tenant,
                    EventType::Normal,
                    "KeyDeletionScheduled",
                    "Cleanup",
                    note,
                )
                .await;
            }
            keys::Shred::NotOwned(why) => {
                warn!(key = %arn, "not crypto-shredding a key this tenant does not own");
                publish(
                    ctx,
                    tenant,
                    EventType::Warning,
                    "KeyNotShredded",
                    "Cleanup",
                    why,
                )
                .await;
            }
        }
    }
    Ok(())
}

/// Writes `status` unless it equals what is stored: a converged reconcile writes nothing.
/// The audit anchor moves to where this process last wrote the tenant's chain, never back.
async fn write_status(
    api: &Api<VideoTenant>,
    tenant: &VideoTenant,
    mut status: VideoTenantStatus,
    ctx: &Context,
) -> Result<bool, Error> {
    let conditions: Vec<(String, bool)> = status
        .conditions
        .iter()
        .map(|c| (c.type_.clone(), c.status == "True"))
        .collect();
    ctx.metrics
        .tenant_conditions(&tenant.name_any(), &conditions);
    if let Some(anchor) = ctx.heads.anchor(&tenant.name_any())
        && status
            .last_audit_record
            .as_ref()
            .is_none_or(|a| a.seq < anchor.seq)
    {
        status.last_audit_record = Some(anchor);
    }
    if tenant.status.as_ref() == Some(&status) {
        return Ok(false);
    }
    let patch = serde_json::json!({
        "apiVersion": "sanctum.dev/v1alpha1",
        "kind": "VideoTenant",
        "status": status,
    });
    api.patch_status(
        &tenant.name_any(),
        &PatchParams::apply(crate::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::PatchStatus {
        tenant: tenant.name_any(),
        source,
    })?;
    Ok(true)
}

/// Publishes an Event on the tenant and the same fact to its audit trail; a failure to
/// publish is logged, never fatal.
async fn publish(
    ctx: &Context,
    tenant: &VideoTenant,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let note = super::event_note(note);
    ctx.audit(tenant, &tenant.name_any(), CONTROLLER, reason, &note);
    event(ctx, tenant, type_, reason, action, note).await;
}

/// Publishes an Event on the tenant only (a repeated failure, already in the trail).
async fn event(
    ctx: &Context,
    tenant: &VideoTenant,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(super::event_note(note)),
        action: action.into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &tenant.object_ref(&())).await {
        warn!(%error, "could not publish event");
    }
}

fn now() -> Time {
    Time(Timestamp::now())
}
