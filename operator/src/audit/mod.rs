//! The operator's side of the audit trail. Records, chains, the store and the shipper are
//! [`sanctum_audit`] (media nodes write the same chains for their session logs); here are
//! the audit bucket's provisioning, the operator's signing key, the chain heads that
//! become each tenant's anchor (`status.lastAuditRecord`) and the metrics of shipping.

pub use sanctum_audit::*;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource};
use sanctum_api::{AuditAnchor, ObjectLockMode, ObjectLockSpec, VideoTenant};
use tokio::sync::mpsc;

use crate::cloud::Cloud;
use crate::cloud::buckets::{self, BucketReport, DesiredBucket};
use crate::metrics::Metrics;

/// Creates the audit bucket (Object Lock on, compliance mode, `retention_days` default
/// retention; public access blocked; TLS only; versioned) or repairs its settings.
pub async fn ensure_bucket(
    cloud: &Cloud,
    bucket: &str,
    retention_days: i32,
) -> Result<BucketReport, CloudError> {
    buckets::ensure_bucket(
        cloud,
        &DesiredBucket {
            name: bucket.to_string(),
            region: cloud.region.clone(),
            tenant: "sanctum-audit".into(),
            // No tenant's uid: no tenant can ever claim the audit bucket.
            tenant_uid: "sanctum-audit".into(),
            reserved: vec![],
            configured: true,
            kms_key_arn: None,
            retention_days,
            object_lock: Some(ObjectLockSpec {
                mode: ObjectLockMode::Compliance,
                days: retention_days,
            }),
            write_once: true,
        },
    )
    .await
}

/// Secret (in the operator's namespace) holding the operator's audit signing key.
pub const SIGNING_KEY_SECRET: &str = "sanctum-audit-signing-key";
/// ConfigMap (in the operator's namespace) publishing every audit signing key the
/// operator has used, for `sanctum audit verify --public-keys`.
pub const SIGNERS_CONFIG_MAP: &str = "sanctum-audit-signers";
/// Key of the PEM bundle in [`SIGNERS_CONFIG_MAP`] (and of the key in the Secret).
pub const SIGNERS_KEY: &str = "signers.pem";
const PRIVATE_KEY: &str = "key.pem";

/// Why the signing key could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The Kubernetes API refused or failed.
    #[error("{action} {what} in namespace {namespace}: {source}")]
    Api {
        /// What was tried.
        action: &'static str,
        /// Which object.
        what: &'static str,
        /// Where.
        namespace: String,
        /// Why.
        source: kube::Error,
    },
    /// The Secret holds no usable key.
    #[error("Secret {SIGNING_KEY_SECRET} holds no Ed25519 key in {PRIVATE_KEY}: {0}")]
    Key(#[from] sign::KeyError),
}

/// The operator's audit signing key: read from its Secret, or made once and stored there
/// (a second operator making one at the same moment loses and reads the winner's). Its
/// public half is added to the signers ConfigMap, which keeps every key ever used.
///
/// The key lives in Kubernetes, not in the cloud: whoever holds the operator's cloud
/// credentials can write to the audit bucket but cannot sign what they write.
pub async fn signer(client: &Client, namespace: &str) -> Result<Signer, SignerError> {
    let api_err = |action, what| {
        let namespace = namespace.to_string();
        move |source| SignerError::Api {
            action,
            what,
            namespace,
            source,
        }
    };
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    let stored = |secret: Secret| -> Result<Option<Signer>, SignerError> {
        let pem = secret
            .data
            .as_ref()
            .and_then(|d| d.get(PRIVATE_KEY))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned());
        pem.map(|pem| Signer::from_pkcs8_pem(&pem).map_err(SignerError::from))
            .transpose()
    };
    let existing = secrets
        .get_opt(SIGNING_KEY_SECRET)
        .await
        .map_err(api_err("reading", "the audit signing key"))?;
    let signer = match existing.map(stored).transpose()?.flatten() {
        Some(signer) => signer,
        None => {
            let signer = Signer::generate()?;
            let secret: Secret = serde_json::from_value(serde_json::json!({
                "metadata": {
                    "name": SIGNING_KEY_SECRET,
                    "labels": {"app.kubernetes.io/managed-by": "sanctum", "app.kubernetes.io/component": "audit"}
                },
                "immutable": true,
                "type": "Opaque",
            }))
            .expect("a Secret");
            let secret = Secret {
                data: Some(BTreeMap::from([(
                    PRIVATE_KEY.to_string(),
                    ByteString(signer.to_pkcs8_pem().as_bytes().to_vec()),
                )])),
                ..secret
            };
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => signer,
                Err(kube::Error::Api(e)) if e.code == 409 => secrets
                    .get(SIGNING_KEY_SECRET)
                    .await
                    .map_err(api_err("reading", "the audit signing key"))
                    .and_then(stored)?
                    .ok_or(SignerError::Key(sign::KeyError::Pem))?,
                Err(e) => return Err(api_err("creating", "the audit signing key")(e)),
            }
        }
    };
    publish_public_key(client, namespace, &signer)
        .await
        .map_err(api_err("publishing", "the audit signers"))?;
    Ok(signer)
}

/// Adds `signer`'s public key to the signers ConfigMap unless it is there.
async fn publish_public_key(
    client: &Client,
    namespace: &str,
    signer: &Signer,
) -> Result<(), kube::Error> {
    let maps = Api::<ConfigMap>::namespaced(client.clone(), namespace);
    let current = maps
        .get_opt(SIGNERS_CONFIG_MAP)
        .await?
        .and_then(|m| m.data)
        .and_then(|d| d.get(SIGNERS_KEY).cloned())
        .unwrap_or_default();
    let public = signer.public_pem();
    if current.contains(&public) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": SIGNERS_CONFIG_MAP,
            "labels": {"app.kubernetes.io/managed-by": "sanctum", "app.kubernetes.io/component": "audit"}
        },
        "data": {SIGNERS_KEY: format!("{current}{public}")},
    });
    maps.patch(
        SIGNERS_CONFIG_MAP,
        &PatchParams::apply(crate::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Where each tenant's chain of reconciles ends in the bucket, as this process wrote it.
/// The tenant controller copies it into `status.lastAuditRecord`: the anchor outside the
/// bucket. Each write also names the tenant on a channel, so that its status follows.
#[derive(Clone, Debug, Default)]
pub struct Heads {
    written: Arc<Mutex<BTreeMap<String, Head>>>,
    notify: Option<mpsc::UnboundedSender<String>>,
}

impl Heads {
    /// Heads, and the channel naming each tenant whose chain moved.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                written: Arc::default(),
                notify: Some(tx),
            },
            rx,
        )
    }

    /// The anchor of `tenant`'s chain, if this process wrote to it.
    pub fn anchor(&self, tenant: &str) -> Option<AuditAnchor> {
        let written = self.written.lock().expect("heads lock");
        written.get(tenant).map(|h| AuditAnchor {
            seq: i64::try_from(h.seq).unwrap_or(i64::MAX),
            hash: h.hash.clone(),
        })
    }

    fn set(&self, tenant: &str, head: &Head) {
        self.written
            .lock()
            .expect("heads lock")
            .insert(tenant.to_string(), head.clone());
        if let Some(notify) = &self.notify {
            let _ = notify.send(tenant.to_string());
        }
    }
}

/// How the operator reports audit shipping: its metrics, the chain heads, and Events on a
/// tenant whose records have waited longer than a threshold to be written (and when they
/// are written after all), so the delay shows where the tenant's other Events are.
#[derive(Clone)]
pub struct AuditMeter {
    metrics: Metrics,
    recorder: Recorder,
    threshold: f64,
    delayed: Arc<Mutex<HashSet<String>>>,
    heads: Heads,
}

impl AuditMeter {
    /// Reports through `metrics` and `heads`, and with `recorder` once records wait
    /// `threshold`.
    pub fn new(metrics: Metrics, recorder: Recorder, threshold: Duration, heads: Heads) -> Self {
        Self {
            metrics,
            recorder,
            threshold: threshold.as_secs_f64(),
            delayed: Arc::default(),
            heads,
        }
    }

    fn publish(&self, tenant: &str, type_: EventType, reason: &'static str, note: String) {
        let recorder = self.recorder.clone();
        let regarding = ObjectReference {
            api_version: Some(VideoTenant::api_version(&()).into_owned()),
            kind: Some(VideoTenant::kind(&()).into_owned()),
            name: Some(tenant.to_string()),
            ..Default::default()
        };
        // The shipper must not wait on the API server; an Event lost here leaves the metric.
        tokio::spawn(async move {
            let event = Event {
                type_,
                reason: reason.into(),
                note: Some(note),
                action: "Audit".into(),
                secondary: None,
            };
            if let Err(error) = recorder.publish(&event, &regarding).await {
                tracing::warn!(%error, "could not publish the audit shipping event");
            }
        });
    }
}

impl trail::Meter for AuditMeter {
    fn shipped(&self, records: u64) {
        self.metrics.audit_shipped(records);
    }

    fn ship_failed(&self) {
        self.metrics.audit_ship_failed();
    }

    fn pending(&self, records: usize) {
        self.metrics.audit_pending(records);
    }

    fn lag(&self, seconds: f64) {
        self.metrics.audit_lag(seconds);
    }

    fn dropped(&self, records: u64) {
        self.metrics.audit_dropped(records);
    }

    fn written(&self, tenant: &str, head: &Head) {
        self.heads.set(tenant, head);
    }

    fn chain_lag(&self, tenant: &str, seconds: f64) {
        let mut delayed = self.delayed.lock().expect("delayed set lock");
        if seconds >= self.threshold && delayed.insert(tenant.to_string()) {
            drop(delayed);
            tracing::warn!(tenant, seconds, "audit records are not being written");
            self.publish(
                tenant,
                EventType::Warning,
                "AuditShippingDelayed",
                format!(
                    "this tenant's audit records have waited {seconds:.0} s: the audit bucket refuses them (see the operator's log and sanctum_audit_ship_failures_total); they stay queued and are retried"
                ),
            );
        } else if seconds == 0.0 && delayed.remove(tenant) {
            drop(delayed);
            self.publish(
                tenant,
                EventType::Normal,
                "AuditShippingRecovered",
                "the delayed audit records are written; the chain is complete".into(),
            );
        }
    }
}
