//! The operator's side of the audit trail. Records, chains, the store and the shipper are
//! [`sanctum_audit`] (media nodes write the same chains for their session logs); here are
//! the audit bucket's provisioning and the operator's metrics for shipping.

pub use sanctum_audit::*;

use sanctum_api::{ObjectLockMode, ObjectLockSpec};

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

impl trail::Meter for Metrics {
    fn shipped(&self, records: u64) {
        self.audit_shipped(records);
    }

    fn ship_failed(&self) {
        self.audit_ship_failed();
    }

    fn pending(&self, records: usize) {
        self.audit_pending(records);
    }

    fn lag(&self, seconds: f64) {
        self.audit_lag(seconds);
    }
}
