//! The `Recording` reconciler: consent → start on the media node hosting the room →
//! stop → seal (checksum verified against S3) → retention → disposal, behind a finalizer
//! that refuses deletion under legal hold.
//!
//! Level-based and split like the tenant controller: `decide.rs` is the state machine
//! (pure, table-tested), `act.rs` performs what it asks for, and this module loops the
//! two, then writes status (only when it changed) and publishes Events and audit records.
//! It must not decide anything itself.

pub mod act;
pub mod decide;
pub mod node;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::Event;
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Resource, ResourceExt};
use sanctum_api::{Recording, RecordingStatus, VideoTenant, labels};
use tracing::{instrument, warn};

use self::act::Actor;
use self::decide::{Facts, Hold, Inputs, Step, decide};
use self::node::{ControlClient, NodeError};
use super::Context;
use crate::cloud::CloudError;
use crate::controller::tenant::build::signing_key;

/// Finalizer that disposes of the object (or refuses, under legal hold).
pub const FINALIZER: &str = "sanctum.dev/recording";
const CONTROLLER: &str = "recording";
/// Steps one pass may take before it stops and looks again later.
const MAX_STEPS: usize = 12;
/// How long a tenant's control client (its key and TLS trust) is reused.
const CLIENT_TTL: Duration = Duration::from_secs(60);

/// Why a recording reconcile failed; each variant names the action.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading from the API failed.
    #[error("failed to read {what}: {source}")]
    Read {
        /// What.
        what: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// Writing status failed.
    #[error("failed to write the recording status: {0}")]
    WriteStatus(#[source] kube::Error),
    /// Listing the tenant's media nodes failed.
    #[error("failed to discover the tenant's media nodes: {source}")]
    DiscoverNodes {
        /// Why.
        #[source]
        source: NodeError,
    },
    /// The control client could not be set up.
    #[error("failed to set up the control client: {source}")]
    ControlClient {
        /// Why.
        #[source]
        source: NodeError,
    },
    /// A node answered with an error other than "not here".
    #[error("failed to ask the media node: {source}")]
    AskNode {
        /// Why.
        #[source]
        source: NodeError,
    },
    /// Reading the stored object failed.
    #[error("failed to read the object {key}: {source}")]
    ReadObject {
        /// Object key.
        key: String,
        /// Why.
        #[source]
        source: CloudError,
    },
    /// Aborting the incomplete upload failed.
    #[error("failed to abort the uploads of {key}: {source}")]
    AbortUploads {
        /// Object key.
        key: String,
        /// Why.
        #[source]
        source: CloudError,
    },
    /// Deleting the object failed.
    #[error("failed to delete the object {key}: {source}")]
    DeleteObject {
        /// Object key.
        key: String,
        /// Why.
        #[source]
        source: CloudError,
    },
    /// Deletion is refused while the recording is on legal hold.
    #[error("recording is under legal hold; set spec.legalHold=false to allow deletion")]
    LegalHold,
    /// Waiting on the node (sealing before disposal).
    #[error("waiting for the media node to seal the recording before disposal")]
    Sealing,
    /// The state machine did not settle within one pass.
    #[error("the recording did not settle within {MAX_STEPS} steps")]
    TooManySteps,
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Short category: the Event reason and the metric label.
    fn reason(&self) -> &'static str {
        match self {
            Error::Read { .. } => "ReadFailed",
            Error::WriteStatus(_) => "StatusFailed",
            Error::DiscoverNodes { .. } | Error::ControlClient { .. } | Error::AskNode { .. } => {
                "MediaNodeFailed"
            }
            Error::ReadObject { .. } | Error::AbortUploads { .. } | Error::DeleteObject { .. } => {
                "StorageFailed"
            }
            Error::LegalHold => "LegalHold",
            Error::Sealing => "Sealing",
            Error::TooManySteps => "TooManySteps",
            Error::Finalizer(_) => "FinalizerFailed",
        }
    }
}

fn read(what: &str) -> impl FnOnce(kube::Error) -> Error {
    let what = what.to_string();
    move |source| Error::Read { what, source }
}

/// Control clients per tenant uid, reused for [`CLIENT_TTL`] instead of re-reading two
/// Secrets and building an HTTP client on every reconcile.
#[derive(Default)]
pub struct ControlClients {
    clients: Mutex<HashMap<String, (Instant, Arc<ControlClient>)>>,
}

impl ControlClients {
    fn get(&self, uid: &str) -> Option<Arc<ControlClient>> {
        let clients = self
            .clients
            .lock()
            .expect("control client cache lock is never poisoned");
        clients
            .get(uid)
            .filter(|(made, _)| made.elapsed() < CLIENT_TTL)
            .map(|(_, c)| c.clone())
    }

    fn put(&self, uid: &str, client: Arc<ControlClient>) {
        self.clients
            .lock()
            .expect("control client cache lock is never poisoned")
            .insert(uid.to_string(), (Instant::now(), client));
    }
}

/// Reconciles one recording; the entry point the controller calls.
#[instrument(skip(guard, ctx), fields(recording = %guard.name_any(), namespace = guard.namespace().unwrap_or_default()))]
pub async fn reconcile(
    guard: Arc<DeserializeGuard<Recording>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    let Some(rec) = super::guarded(&ctx, &guard, CONTROLLER).await else {
        return Ok(Action::await_change());
    };
    let Some(tenant) = tenant_of(&rec, &ctx).await? else {
        // Not in a tenant namespace this replica serves.
        return Ok(Action::await_change());
    };
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let ns = rec.namespace().unwrap_or_default();
    let api = Api::<Recording>::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, rec.clone(), |event| async {
        match event {
            finalizer::Event::Apply(r) => pass(&r, &tenant, &ctx, false).await,
            finalizer::Event::Cleanup(r) => pass(&r, &tenant, &ctx, true).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    });
    if let Err(error) = &result {
        ctx.metrics.reconcile_failed(CONTROLLER, error.reason());
        if !matches!(error, Error::Sealing) {
            warn!(%error, "recording reconcile failed");
            publish(
                &ctx,
                &rec,
                &tenant,
                &decide::Note {
                    warning: true,
                    reason: error.reason(),
                    message: error.to_string(),
                },
            )
            .await;
        }
    } else {
        ctx.reset_backoff(&format!("rec/{ns}/{}", rec.name_any()));
    }
    result
}

/// Retry: quickly while sealing, with backoff otherwise; legal hold waits for a change.
pub fn error_policy(
    rec: Arc<DeserializeGuard<Recording>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    match error {
        Error::Sealing => Action::requeue(Duration::from_secs(1)),
        Error::LegalHold => Action::requeue(ctx.config.resync),
        _ => Action::requeue(ctx.next_backoff(&format!(
            "rec/{}/{}",
            rec.namespace().unwrap_or_default(),
            rec.name_any()
        ))),
    }
}

/// The tenant owning the recording's namespace, if this replica serves it.
async fn tenant_of(rec: &Recording, ctx: &Context) -> Result<Option<VideoTenant>> {
    let ns = rec.namespace().unwrap_or_default();
    let Some(namespace) = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(&ns)
        .await
        .map_err(read("namespace"))?
    else {
        return Ok(None);
    };
    let Some(tenant) = namespace.labels().get(labels::TENANT).cloned() else {
        return Ok(None);
    };
    let tenants = Api::<VideoTenant>::all(ctx.client.clone());
    let mut params = ListParams::default().fields(&format!("metadata.name={tenant}"));
    if let Some(selector) = &ctx.config.tenant_selector {
        params = params.labels(selector);
    }
    let found = tenants.list(&params).await.map_err(read("tenant"))?;
    // The namespace must really be this tenant's: the tenant's status names it, and the
    // namespace is owned by the tenant's uid (labels can be set by anyone with access).
    Ok(found.items.into_iter().find(|t| {
        t.status.as_ref().and_then(|s| s.namespace.as_deref()) == Some(ns.as_str())
            && crate::controller::tenant::build::is_owned_by(
                &namespace,
                &t.uid().unwrap_or_default(),
            )
    }))
}

/// Object key of a recording: its uid only, so the key says nothing about anyone.
pub fn object_key(rec: &Recording) -> String {
    format!("recordings/{}.sealed", rec.uid().unwrap_or_default())
}

/// One pass: decide, act, decide again ... until done; then write and publish.
async fn pass(
    rec: &Recording,
    tenant: &VideoTenant,
    ctx: &Context,
    deleting: bool,
) -> Result<Action> {
    let status = rec.status.clone().unwrap_or_default();
    let ns = rec.namespace().unwrap_or_default();
    let namespace_terminating = deleting
        && Api::<Namespace>::all(ctx.client.clone())
            .get_opt(&ns)
            .await
            .map_err(read("namespace"))?
            .is_none_or(|n| n.metadata.deletion_timestamp.is_some());
    let key = object_key(rec);
    let bucket = tenant.status.as_ref().and_then(|s| s.bucket.clone());
    let inputs = Inputs {
        spec: &rec.spec,
        generation: rec.metadata.generation,
        status: &status,
        policy: &tenant.spec.recording,
        tenant_retention_days: tenant.spec.storage.retention_days,
        bucket: bucket.as_deref(),
        key: &key,
        deleting,
        namespace_terminating,
        now: Timestamp::now(),
        integrity_interval: ctx.config.integrity_interval,
        resync: ctx.config.resync,
    };
    let mut facts = Facts::default();
    let mut client = None;
    let id = rec.uid().unwrap_or_default();
    let tenant_uid = tenant.uid().unwrap_or_default();
    let outcome = 'steps: {
        for _ in 0..MAX_STEPS {
            match decide(&inputs, &facts) {
                Step::Done(outcome) => break 'steps outcome,
                Step::Act(action) => {
                    if client.is_none() {
                        client = Some(control_client(tenant, ctx).await?);
                    }
                    let client = client.as_deref().expect("set just above");
                    let actor = Actor {
                        ctx,
                        client,
                        namespace: &ns,
                        tenant_uid: &tenant_uid,
                        id: &id,
                    };
                    actor.act(action, &mut facts).await?;
                }
            }
        }
        return Err(Error::TooManySteps);
    };
    write_status(ctx, rec, outcome.status).await?;
    for note in &outcome.notes {
        publish(ctx, rec, tenant, note).await;
    }
    match outcome.hold {
        Some(Hold::LegalHold) => Err(Error::LegalHold),
        Some(Hold::Sealing) => Err(Error::Sealing),
        None => Ok(outcome
            .requeue
            .map_or_else(Action::await_change, Action::requeue)),
    }
}

async fn control_client(tenant: &VideoTenant, ctx: &Context) -> Result<Arc<ControlClient>> {
    let name = tenant.name_any();
    let uid = tenant.uid().unwrap_or_default();
    if let Some(client) = ctx.control_clients.get(&uid) {
        return Ok(client);
    }
    let secret_name = signing_key::control_key_name_for(&name, &uid);
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.config.operator_namespace);
    let setup = |e: String| Error::ControlClient {
        source: NodeError::Setup(e),
    };
    let secret = secrets
        .get_opt(&secret_name)
        .await
        .map_err(read("control key"))?
        .ok_or_else(|| setup(format!("control key Secret {secret_name} not made yet")))?;
    let pem = secret
        .data
        .as_ref()
        .and_then(|d| d.get(signing_key::PRIVATE_KEY_FILE))
        .ok_or_else(|| setup("control key Secret holds no key".into()))?;
    let ca_name = crate::controller::tenant::build::control_tls::ca_secret_name_for(&name, &uid);
    let ca = secrets
        .get_opt(&ca_name)
        .await
        .map_err(read("control CA"))?
        .ok_or_else(|| setup(format!("control CA Secret {ca_name} not made yet")))?;
    let identity = crate::controller::tenant::build::control_tls::client_identity(&ca)
        .map_err(|e| setup(e.to_string()))?;
    let client = ControlClient::new(&pem.0, &name, &identity, &ctx.config.resolve)
        .map_err(|source| Error::ControlClient { source })?;
    let client = Arc::new(client);
    ctx.control_clients.put(&uid, client.clone());
    Ok(client)
}

/// Writes status if it differs; true when written.
async fn write_status(ctx: &Context, rec: &Recording, mut status: RecordingStatus) -> Result<bool> {
    status.observed_generation = rec.metadata.generation;
    if rec.status.as_ref() == Some(&status) {
        return Ok(false);
    }
    let api =
        Api::<Recording>::namespaced(ctx.client.clone(), &rec.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": "sanctum.dev/v1alpha1",
        "kind": "Recording",
        "status": status,
    });
    api.patch_status(
        &rec.name_any(),
        &PatchParams::apply(crate::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::WriteStatus)?;
    Ok(true)
}

/// Publishes an Event on the recording and the same fact to the tenant's audit trail.
async fn publish(ctx: &Context, rec: &Recording, tenant: &VideoTenant, note: &decide::Note) {
    let message = super::event_note(note.message.clone());
    ctx.audit(rec, &tenant.name_any(), CONTROLLER, note.reason, &message);
    let event = Event {
        type_: note.event_type(),
        reason: note.reason.into(),
        note: Some(message),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &rec.object_ref(&())).await {
        warn!(%error, "could not publish event");
    }
}
