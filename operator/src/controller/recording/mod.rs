//! The `Recording` reconciler: consent → start on the media node hosting the room →
//! stop → seal (checksum verified against S3) → retention → disposal, behind a finalizer
//! that refuses deletion under legal hold.
//!
//! Level-based: each pass reads the phase in status and the node's report, takes one
//! step, and writes status only when it changed.

pub mod node;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{self, finalizer};
use kube::{Api, Resource, ResourceExt};
use sanctum_api::control::{NodePhase, RecordingReport, StartRecording};
use sanctum_api::{Recording, RecordingPhase, RecordingStatus, VideoTenant, labels};
use tracing::{info, instrument, warn};

use self::node::{ControlClient, NodeEndpoint, NodeError};
use super::Context;
use super::conditions::{Desired, merge};
use crate::cloud::{CloudError, objects};
use crate::controller::tenant::build::signing_key;

/// Finalizer that disposes of the object (or refuses, under legal hold).
pub const FINALIZER: &str = "sanctum.dev/recording";
const CONTROLLER: &str = "recording";

/// Why a recording reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading from the API failed.
    #[error("reading {what} failed: {source}")]
    Read {
        /// What.
        what: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// Writing status failed.
    #[error("writing status failed: {0}")]
    Status(#[source] kube::Error),
    /// S3 refused or failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The media node could not be reached or refused.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Deletion is refused while the recording is on legal hold.
    #[error("recording is under legal hold; set spec.legalHold=false to allow deletion")]
    LegalHold,
    /// Waiting on the node (sealing before disposal).
    #[error("waiting for the media node to seal the recording before disposal")]
    Sealing,
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Read { .. } => "ReadFailed",
            Error::Status(_) => "StatusFailed",
            Error::Cloud(_) => "StorageFailed",
            Error::Node(_) => "MediaNodeFailed",
            Error::LegalHold => "LegalHold",
            Error::Sealing => "Sealing",
            Error::Finalizer(_) => "FinalizerFailed",
        }
    }
}

fn read(what: &str) -> impl FnOnce(kube::Error) -> Error {
    let what = what.to_string();
    move |source| Error::Read { what, source }
}

/// Reconciles one recording; the entry point the controller calls.
#[instrument(skip(rec, ctx), fields(recording = %rec.name_any(), namespace = rec.namespace().unwrap_or_default()))]
pub async fn reconcile(rec: Arc<Recording>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(tenant) = tenant_of(&rec, &ctx).await? else {
        // Not in a tenant namespace this replica serves.
        return Ok(Action::await_change());
    };
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let ns = rec.namespace().unwrap_or_default();
    let api = Api::<Recording>::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, rec.clone(), |event| async {
        match event {
            finalizer::Event::Apply(r) => apply(&r, &tenant, &ctx).await,
            finalizer::Event::Cleanup(r) => cleanup(&r, &tenant, &ctx).await,
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
                EventType::Warning,
                error.reason(),
                error.to_string(),
            )
            .await;
        }
    } else {
        ctx.reset_backoff(&format!("rec/{ns}/{}", rec.name_any()));
    }
    result
}

/// Retry: quickly while sealing, with backoff otherwise; legal hold waits for a change.
pub fn error_policy(rec: Arc<Recording>, error: &Error, ctx: Arc<Context>) -> Action {
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
async fn tenant_of(rec: &Recording, ctx: &Context) -> Result<Option<VideoTenant>, Error> {
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
    // The namespace must really be this tenant's (labels can be set by anyone with access).
    Ok(found
        .items
        .into_iter()
        .find(|t| t.status.as_ref().and_then(|s| s.namespace.as_deref()) == Some(ns.as_str())))
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// The retention in days that applies: the recording's override, else the tenant's.
fn retention_days(rec: &Recording, tenant: &VideoTenant) -> i64 {
    i64::from(
        rec.spec
            .retention_days
            .unwrap_or(tenant.spec.storage.retention_days),
    )
}

fn expires_at(ended: &Time, days: i64) -> Time {
    Time(ended.0 + SignedDuration::from_hours(24 * days))
}

/// Object key of a recording: its uid only, so the key says nothing about anyone.
pub fn object_key(rec: &Recording) -> String {
    format!("recordings/{}.sealed", rec.uid().unwrap_or_default())
}

async fn control_client(tenant: &VideoTenant, ctx: &Context) -> Result<ControlClient, Error> {
    let name = tenant.name_any();
    let uid = tenant.uid().unwrap_or_default();
    let secret_name = signing_key::control_key_name_for(&name, &uid);
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.config.operator_namespace);
    let secret = secrets
        .get_opt(&secret_name)
        .await
        .map_err(read("control key"))?
        .ok_or_else(|| {
            NodeError::Setup(format!("control key Secret {secret_name} not made yet"))
        })?;
    let pem = secret
        .data
        .as_ref()
        .and_then(|d| d.get(signing_key::PRIVATE_KEY_FILE))
        .ok_or_else(|| NodeError::Setup("control key Secret holds no key".into()))?;
    let ns = tenant
        .status
        .as_ref()
        .and_then(|s| s.namespace.clone())
        .unwrap_or_default();
    let tls = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&tenant.spec.media.tls_secret_name)
        .await
        .map_err(read("media TLS Secret"))?;
    Ok(ControlClient::new(
        &pem.0,
        &name,
        tls.as_ref(),
        &ctx.config.resolve,
    )?)
}

/// One step forward from the current phase.
async fn apply(rec: &Recording, tenant: &VideoTenant, ctx: &Context) -> Result<Action, Error> {
    let status = rec.status.clone().unwrap_or_default();
    let id = rec.uid().unwrap_or_default();
    match status.phase {
        None | Some(RecordingPhase::Pending) => start(rec, tenant, ctx, status, &id).await,
        Some(RecordingPhase::Recording) | Some(RecordingPhase::Finalizing) => {
            follow(rec, tenant, ctx, status, &id).await
        }
        Some(RecordingPhase::Sealed) => retain(rec, tenant, ctx, status).await,
        Some(RecordingPhase::Expired) => dispose(rec, tenant, ctx, status).await,
        Some(RecordingPhase::Deleted) | Some(RecordingPhase::Failed) => Ok(Action::await_change()),
    }
}

async fn start(
    rec: &Recording,
    tenant: &VideoTenant,
    ctx: &Context,
    mut status: RecordingStatus,
    id: &str,
) -> Result<Action, Error> {
    let policy = &tenant.spec.recording;
    if !policy.enabled {
        return fail(
            ctx,
            rec,
            tenant,
            status,
            "RecordingDisabled",
            "the tenant does not allow recordings (spec.recording.enabled=false)",
        )
        .await;
    }
    if policy.require_consent && rec.spec.consent.is_none() {
        return fail(
            ctx,
            rec,
            tenant,
            status,
            "ConsentRequired",
            "the tenant requires consent and spec.consent is missing; nothing was recorded",
        )
        .await;
    }
    if rec.spec.stop {
        return fail(
            ctx,
            rec,
            tenant,
            status,
            "StoppedBeforeStart",
            "spec.stop was set before recording started",
        )
        .await;
    }
    let Some(bucket) = tenant.status.as_ref().and_then(|s| s.bucket.clone()) else {
        status.phase = Some(RecordingPhase::Pending);
        set_conditions(
            &mut status,
            rec,
            false,
            "TenantNotReady",
            "the tenant has no bucket yet",
        );
        write_status(ctx, rec, status).await?;
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let ns = rec.namespace().unwrap_or_default();
    let client = control_client(tenant, ctx).await?;
    let request = StartRecording {
        room: rec.spec.room.clone(),
        bucket: bucket.clone(),
        key: object_key(rec),
    };
    let mut last_error = None;
    for endpoint in node::endpoints(&ctx.client, &ns).await? {
        match client.start(&endpoint, id, &request).await {
            Ok(report) => {
                status.phase = Some(RecordingPhase::Recording);
                status.bucket = Some(bucket);
                status.key = Some(request.key.clone());
                status.key_version = Some(report.key_version);
                status.media_node = Some(endpoint.to_string());
                status.started_at = parse_time(&report.started_at);
                set_conditions(
                    &mut status,
                    rec,
                    false,
                    "Recording",
                    "the media node is recording the room",
                );
                write_status(ctx, rec, status).await?;
                info!(node = %endpoint, "recording started");
                publish(
                    ctx,
                    rec,
                    tenant,
                    EventType::Normal,
                    "Started",
                    format!("recording on media node {endpoint}"),
                )
                .await;
                return Ok(Action::requeue(Duration::from_secs(5)));
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    status.phase = Some(RecordingPhase::Pending);
    let message = match last_error {
        Some(e) => format!("no media node accepted the recording: {e}"),
        None => "no media node hosts a publisher in this room yet".to_string(),
    };
    set_conditions(&mut status, rec, false, "RoomNotActive", &message);
    write_status(ctx, rec, status).await?;
    Ok(Action::requeue(Duration::from_secs(5)))
}

/// Recording or Finalizing: stop when asked, and follow the node until sealed.
async fn follow(
    rec: &Recording,
    tenant: &VideoTenant,
    ctx: &Context,
    mut status: RecordingStatus,
    id: &str,
) -> Result<Action, Error> {
    let Some(endpoint) = status.media_node.as_deref().and_then(NodeEndpoint::parse) else {
        return fail(
            ctx,
            rec,
            tenant,
            status,
            "NodeUnknown",
            "status names no media node",
        )
        .await;
    };
    let client = control_client(tenant, ctx).await?;
    let report = if rec.spec.stop && status.phase == Some(RecordingPhase::Recording) {
        client.stop(&endpoint, id).await
    } else {
        client.get(&endpoint, id).await
    };
    let report = match report {
        Ok(r) => r,
        Err(e @ (NodeError::Unreachable(..) | NodeError::Status { status: 404, .. })) => {
            // The node restarted or is gone: what it held in memory is lost. Abort the
            // upload so no incomplete object lingers, and say so.
            if let (Some(bucket), Some(key)) = (&status.bucket, &status.key) {
                objects::abort_uploads(&ctx.cloud, bucket, key).await?;
            }
            return fail(
                ctx,
                rec,
                tenant,
                status,
                "MediaNodeLost",
                &format!("the media node lost the recording ({e}); its upload was aborted"),
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    };
    match report.phase {
        // Just asked to stop: the node reports `recording` until its recorder takes the
        // stop off its queue, so look again soon rather than at the recording cadence.
        NodePhase::Recording if rec.spec.stop => Ok(Action::requeue(Duration::from_secs(1))),
        NodePhase::Recording => Ok(Action::requeue(Duration::from_secs(10))),
        NodePhase::Finalizing => {
            if status.phase != Some(RecordingPhase::Finalizing) {
                status.phase = Some(RecordingPhase::Finalizing);
                status.ended_at = report.ended_at.as_deref().and_then(parse_time);
                set_conditions(
                    &mut status,
                    rec,
                    false,
                    "Finalizing",
                    "the media node is completing the upload",
                );
                write_status(ctx, rec, status).await?;
            }
            Ok(Action::requeue(Duration::from_secs(1)))
        }
        NodePhase::Failed => {
            let reason = report.reason.unwrap_or_default();
            fail(
                ctx,
                rec,
                tenant,
                status,
                "RecordingFailed",
                &format!("the media node failed: {reason}"),
            )
            .await
        }
        NodePhase::Sealed => seal(rec, tenant, ctx, status, report).await,
    }
}

/// The node sealed the object: verify it in S3 and record where it is and what it hashes to.
async fn seal(
    rec: &Recording,
    tenant: &VideoTenant,
    ctx: &Context,
    mut status: RecordingStatus,
    report: RecordingReport,
) -> Result<Action, Error> {
    let (bucket, key) = (report.bucket.clone(), report.key.clone());
    let (sha, size) =
        objects::sha256(&ctx.cloud, &bucket, &key, report.version_id.as_deref()).await?;
    if Some(&sha) != report.sha256.as_ref() {
        return fail(
            ctx,
            rec,
            tenant,
            status,
            "ChecksumMismatch",
            "the stored object does not match the checksum the media node computed while uploading",
        )
        .await;
    }
    let ended = report
        .ended_at
        .as_deref()
        .and_then(parse_time)
        .unwrap_or_else(now);
    status.phase = Some(RecordingPhase::Sealed);
    status.bucket = Some(bucket);
    status.key = Some(key);
    status.version_id = report.version_id;
    status.size_bytes = Some(size);
    status.sha256 = Some(sha);
    status.key_version = Some(report.key_version);
    status.expires_at = Some(expires_at(&ended, retention_days(rec, tenant)));
    status.ended_at = Some(ended);
    status.integrity_checked_at = Some(now());
    set_conditions(
        &mut status,
        rec,
        true,
        "Sealed",
        "stored, encrypted and checksummed",
    );
    write_status(ctx, rec, status).await?;
    info!(bytes = size, "recording sealed");
    publish(
        ctx,
        rec,
        tenant,
        EventType::Normal,
        "Sealed",
        format!("sealed: {size} bytes, checksum verified"),
    )
    .await;
    Ok(Action::requeue(Duration::from_secs(1)))
}

/// Sealed: keep until `expiresAt` unless on legal hold; re-verify the checksum periodically.
async fn retain(
    rec: &Recording,
    tenant: &VideoTenant,
    ctx: &Context,
    mut status: RecordingStatus,
) -> Result<Action, Error> {
    let current = now();
    let ended = status.ended_at.clone().unwrap_or_else(|| current.clone());
    let expires = expires_at(&ended, retention_days(rec, tenant));
    status.expires_at = Some(expires.clone());
    if expires.0 <= current.0 && !rec.spec.legal_hold {
        status.phase = Some(RecordingPhase::Expired);
        set_conditions(
            &mut status,
            rec,
            false,
            "Expired",
            "retention has passed; deleting the object and its wrapped data key",
        );
        write_status(ctx, rec, status.clone()).await?;
        publish(
            ctx,
            rec,
            tenant,
            EventType::Normal,
            "Expired",
            "retention passed".into(),
        )
        .await;
        return dispose(rec, tenant, ctx, status).await;
    }
    let interval = ctx.config.integrity_interval;
    let due = status.integrity_checked_at.as_ref().is_none_or(|t| {
        current.0.duration_since(t.0)
            >= SignedDuration::try_from(interval).unwrap_or(SignedDuration::MAX)
    });
    if due && let (Some(bucket), Some(key)) = (status.bucket.clone(), status.key.clone()) {
        let checked =
            objects::sha256(&ctx.cloud, &bucket, &key, status.version_id.as_deref()).await;
        let (ok, reason, message) = match &checked {
            Ok((sha, _)) if Some(sha) == status.sha256.as_ref() => (
                true,
                "ChecksumMatches",
                "the stored object matches status.sha256".to_string(),
            ),
            Ok(_) => (
                false,
                "ChecksumMismatch",
                "the stored object does NOT match status.sha256: it was altered or replaced"
                    .to_string(),
            ),
            Err(e) if e.is_not_found() => {
                match restored_version(ctx, &bucket, &key, &status).await? {
                    Some(restored) => {
                        let message = format!(
                            "version {} is gone; the object restored from it (version {restored}) matches status.sha256 and is now this recording's",
                            status.version_id.as_deref().unwrap_or("null")
                        );
                        status.version_id = Some(restored);
                        (true, "Relinked", message)
                    }
                    None => (
                        false,
                        "ObjectMissing",
                        format!("the stored object is missing: {e}"),
                    ),
                }
            }
            Err(e) => {
                return Err(Error::Cloud(CloudError::other(
                    e.operation,
                    e.message.clone(),
                )));
            }
        };
        status.integrity_checked_at = Some(current.clone());
        let mut conditions = ready_conditions(&status);
        conditions.push(if ok {
            Desired::yes("IntegrityVerified", reason, message.clone())
        } else {
            Desired::no("IntegrityVerified", reason, message.clone())
        });
        status.conditions = merge(
            &status.conditions,
            &conditions,
            rec.metadata.generation,
            &current,
        );
        write_status(ctx, rec, status).await?;
        if !ok {
            warn!("recording integrity check failed");
            publish(ctx, rec, tenant, EventType::Warning, reason, message).await;
        } else if reason == "Relinked" {
            info!("recording re-linked to its restored object");
            publish(ctx, rec, tenant, EventType::Normal, reason, message).await;
        }
    } else {
        write_status(ctx, rec, status.clone()).await?;
    }
    // Wake at expiry or the next integrity check, whichever is first.
    let until_expiry = expires.0.duration_since(current.0);
    let wait = Duration::try_from(until_expiry)
        .unwrap_or(Duration::ZERO)
        .min(interval)
        .min(ctx.config.resync)
        .max(Duration::from_secs(1));
    Ok(Action::requeue(wait))
}

/// After `sanctum restore`: the key's current version, when it was restored from the
/// version the status names (restore's metadata says so) and its SHA-256 is the one
/// recorded at sealing. Anything else stays missing: the metadata alone proves nothing.
async fn restored_version(
    ctx: &Context,
    bucket: &str,
    key: &str,
    status: &RecordingStatus,
) -> Result<Option<String>, CloudError> {
    let (Some(lost), Some(sealed_sha)) = (status.version_id.as_deref(), status.sha256.as_ref())
    else {
        return Ok(None);
    };
    let head = match ctx
        .cloud
        .s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
    {
        Ok(head) => head,
        Err(e) => {
            let error = CloudError::from_sdk("HeadObject", &e);
            return if error.is_not_found() {
                Ok(None)
            } else {
                Err(error)
            };
        }
    };
    let from = head
        .metadata()
        .and_then(|m| m.get(crate::backup::RESTORED_FROM_VERSION));
    let (Some(from), Some(current)) = (from, head.version_id()) else {
        return Ok(None);
    };
    if from != lost {
        return Ok(None);
    }
    let (sha, _) = objects::sha256(&ctx.cloud, bucket, key, Some(current)).await?;
    Ok((&sha == sealed_sha).then(|| current.to_string()))
}

/// Expired: delete every version of the object (with its header, the wrapped data key).
async fn dispose(
    rec: &Recording,
    tenant: &VideoTenant,
    ctx: &Context,
    mut status: RecordingStatus,
) -> Result<Action, Error> {
    if let (Some(bucket), Some(key)) = (&status.bucket, &status.key) {
        let deleted = objects::delete_all_versions(&ctx.cloud, bucket, key).await?;
        info!(versions = deleted, "recording deleted");
    }
    status.phase = Some(RecordingPhase::Deleted);
    set_conditions(
        &mut status,
        rec,
        true,
        "Deleted",
        "retention passed; the object and its wrapped data key were deleted",
    );
    write_status(ctx, rec, status).await?;
    publish(
        ctx,
        rec,
        tenant,
        EventType::Normal,
        "Deleted",
        "object and wrapped data key deleted after retention".into(),
    )
    .await;
    Ok(Action::await_change())
}

/// Deletion of the resource: refused under legal hold; otherwise the recording is stopped
/// and sealed if needed, then its object destroyed. When the whole tenant namespace is
/// going, the tenant's deletion policy decides about the bucket, so objects stay.
async fn cleanup(rec: &Recording, tenant: &VideoTenant, ctx: &Context) -> Result<Action, Error> {
    let mut status = rec.status.clone().unwrap_or_default();
    if rec.spec.legal_hold {
        let mut conditions = ready_conditions(&status);
        conditions.push(Desired::yes(
            "DeletionBlocked",
            "LegalHold",
            "deletion is refused while spec.legalHold is true",
        ));
        status.conditions = merge(
            &status.conditions,
            &conditions,
            rec.metadata.generation,
            &now(),
        );
        write_status(ctx, rec, status).await?;
        return Err(Error::LegalHold);
    }
    let ns = rec.namespace().unwrap_or_default();
    let terminating = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(&ns)
        .await
        .map_err(read("namespace"))?
        .is_none_or(|n| n.metadata.deletion_timestamp.is_some());
    if terminating {
        return Ok(Action::await_change());
    }
    if matches!(
        status.phase,
        Some(RecordingPhase::Recording | RecordingPhase::Finalizing)
    ) && let Some(endpoint) = status.media_node.as_deref().and_then(NodeEndpoint::parse)
    {
        let client = control_client(tenant, ctx).await?;
        let id = rec.uid().unwrap_or_default();
        match client.stop(&endpoint, &id).await {
            Ok(r) if matches!(r.phase, NodePhase::Recording | NodePhase::Finalizing) => {
                return Err(Error::Sealing);
            }
            Ok(_)
            | Err(NodeError::Unreachable(..))
            | Err(NodeError::Status { status: 404, .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let (Some(bucket), Some(key)) = (&status.bucket, &status.key) {
        objects::abort_uploads(&ctx.cloud, bucket, key).await?;
        let deleted = objects::delete_all_versions(&ctx.cloud, bucket, key).await?;
        info!(versions = deleted, "recording deleted with its resource");
    }
    Ok(Action::await_change())
}

async fn fail(
    ctx: &Context,
    rec: &Recording,
    tenant: &VideoTenant,
    mut status: RecordingStatus,
    reason: &str,
    message: &str,
) -> Result<Action, Error> {
    status.phase = Some(RecordingPhase::Failed);
    let current = now();
    status.conditions = merge(
        &status.conditions,
        &[
            Desired::no("Ready", reason, message),
            Desired::no("Reconciling", reason, message),
            Desired::yes("Stalled", reason, message),
        ],
        rec.metadata.generation,
        &current,
    );
    if write_status(ctx, rec, status).await? {
        warn!(reason, "recording failed");
        publish(
            ctx,
            rec,
            tenant,
            EventType::Warning,
            reason,
            message.to_string(),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// The kstatus conditions as they stand, to merge another condition beside them.
fn ready_conditions(status: &RecordingStatus) -> Vec<Desired> {
    status
        .conditions
        .iter()
        .filter(|c| matches!(c.type_.as_str(), "Ready" | "Reconciling" | "Stalled"))
        .map(Desired::from_condition)
        .collect()
}

/// Ready/Reconciling/Stalled as kstatus reads them: done (`ready`), or still moving.
fn set_conditions(
    status: &mut RecordingStatus,
    rec: &Recording,
    ready: bool,
    reason: &str,
    message: &str,
) {
    let mut desired = if ready {
        vec![
            Desired::yes("Ready", reason, message),
            Desired::no("Reconciling", reason, message),
        ]
    } else {
        vec![
            Desired::no("Ready", reason, message),
            Desired::yes("Reconciling", reason, message),
        ]
    };
    desired.push(Desired::no("Stalled", reason, message));
    let keep: Vec<Desired> = status
        .conditions
        .iter()
        .filter(|c| c.type_ == "IntegrityVerified")
        .map(Desired::from_condition)
        .collect();
    desired.extend(keep);
    status.conditions = merge(
        &status.conditions,
        &desired,
        rec.metadata.generation,
        &now(),
    );
}

fn parse_time(s: &str) -> Option<Time> {
    s.parse::<Timestamp>().ok().map(Time)
}

/// Writes status if it differs; true when written.
async fn write_status(
    ctx: &Context,
    rec: &Recording,
    mut status: RecordingStatus,
) -> Result<bool, Error> {
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
    .map_err(Error::Status)?;
    Ok(true)
}

/// Publishes an Event on the recording and the same fact to the tenant's audit trail.
async fn publish(
    ctx: &Context,
    rec: &Recording,
    tenant: &VideoTenant,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let note = super::event_note(note);
    ctx.audit(rec, &tenant.name_any(), CONTROLLER, reason, &note);
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &rec.object_ref(&())).await {
        warn!(%error, "could not publish event");
    }
}
