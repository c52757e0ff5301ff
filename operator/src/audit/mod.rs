//! The operator's side of the audit trail. Records, chains, the store and the shipper are
//! [`sanctum_audit`] (media nodes write the same chains for their session logs); here are
//! the audit bucket's provisioning and the operator's metrics for shipping.

pub use sanctum_audit::*;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use sanctum_api::{ObjectLockMode, ObjectLockSpec, VideoTenant};

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
        },
    )
    .await
}

/// How the operator reports audit shipping: its metrics, and Events on a tenant whose
/// records have waited longer than a threshold to be written (and when they are written
/// after all), so the delay shows where the tenant's other Events are.
#[derive(Clone)]
pub struct AuditMeter {
    metrics: Metrics,
    recorder: Recorder,
    threshold: f64,
    delayed: Arc<Mutex<HashSet<String>>>,
}

impl AuditMeter {
    /// Reports through `metrics`, and with `recorder` once records wait `threshold`.
    pub fn new(metrics: Metrics, recorder: Recorder, threshold: Duration) -> Self {
        Self {
            metrics,
            recorder,
            threshold: threshold.as_secs_f64(),
            delayed: Arc::default(),
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
