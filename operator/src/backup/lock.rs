//! One backup run at a time per tenant: a lock object created with `If-None-Match: *`,
//! taken over only when expired (`If-Match` on the version read), renewed while the run
//! lasts, and released at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{BackupError, Plan, lock_key, now};
use crate::cloud::objects;
use crate::cloud::{Cloud, CloudError};

/// The lock object of `plan`'s tenant: created if absent, taken over if expired, renewed
/// while held.
pub(super) struct Lock {
    lost: Arc<AtomicBool>,
    renew: tokio::task::JoinHandle<()>,
}

#[derive(Serialize, Deserialize)]
struct LockBody {
    holder: String,
    until: String,
}

/// Puts the lock object with a precondition (absent, or still the version `if_match`
/// names); returns its new ETag, or `None` when the precondition failed.
async fn put_lock(
    cloud: &Cloud,
    plan: &Plan,
    if_match: Option<&str>,
) -> Result<Option<String>, CloudError> {
    let until = now()
        + jiff::SignedDuration::try_from(plan.lock_for)
            .unwrap_or(jiff::SignedDuration::from_secs(60));
    let body = serde_json::to_vec(&LockBody {
        holder: plan.holder.clone(),
        until: until.to_string(),
    })
    .expect("lock body serializes");
    let put = cloud
        .s3
        .put_object()
        .bucket(&plan.destination_bucket)
        .key(lock_key(&plan.tenant))
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(body));
    let put = match if_match {
        Some(etag) => put.if_match(etag),
        None => put.if_none_match("*"),
    };
    Ok(objects::unless_precondition_failed(put.send().await)?
        .map(|out| out.e_tag().unwrap_or_default().to_string()))
}

/// The lock object's ETag and content, if it exists.
async fn read_lock(
    cloud: &Cloud,
    plan: &Plan,
) -> Result<Option<(String, Option<LockBody>)>, CloudError> {
    let got = cloud
        .s3
        .get_object()
        .bucket(&plan.destination_bucket)
        .key(lock_key(&plan.tenant))
        .send()
        .await;
    let out = match got {
        Ok(out) => out,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
        Err(e) => return Err(CloudError::from_sdk("GetObject", &e)),
    };
    let etag = out.e_tag().unwrap_or_default().to_string();
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| CloudError::other("GetObject", e.to_string()))?
        .into_bytes();
    Ok(Some((etag, serde_json::from_slice(&body).ok())))
}

impl Lock {
    /// Takes the lock, waiting up to `plan.wait` for a live holder to finish.
    pub(super) async fn acquire(cloud: &Cloud, plan: &Plan) -> Result<Self, BackupError> {
        let deadline = tokio::time::Instant::now() + plan.wait;
        loop {
            if let Some(etag) = put_lock(cloud, plan, None).await? {
                return Ok(Self::hold(cloud, plan, etag));
            }
            // Held (or released a moment ago): take it over if it expired.
            if let Some((etag, held)) = read_lock(cloud, plan).await? {
                let until = held
                    .as_ref()
                    .and_then(|h| h.until.parse::<jiff::Timestamp>().ok());
                match (held, until) {
                    (Some(held), Some(until)) if until >= now() => {
                        if tokio::time::Instant::now() >= deadline {
                            return Err(BackupError::Busy {
                                tenant: plan.tenant.clone(),
                                holder: held.holder,
                                until: held.until,
                            });
                        }
                    }
                    (held, _) => {
                        if let Some(etag) = put_lock(cloud, plan, Some(&etag)).await? {
                            if let Some(h) = held {
                                warn!(tenant = %plan.tenant, previous = %h.holder, "took over an expired backup lock");
                            }
                            return Ok(Self::hold(cloud, plan, etag));
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Renews the lock every quarter of its lifetime until released; a refused renewal
    /// (someone took it over) marks it lost.
    fn hold(cloud: &Cloud, plan: &Plan, mut etag: String) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let renew = tokio::spawn({
            let (cloud, plan, lost) = (cloud.clone(), plan.clone(), lost.clone());
            async move {
                loop {
                    tokio::time::sleep(plan.lock_for / 4).await;
                    match put_lock(&cloud, &plan, Some(&etag)).await {
                        Ok(Some(next)) => etag = next,
                        Ok(None) | Err(_) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            }
        });
        Self { lost, renew }
    }

    pub(super) fn check(&self, tenant: &str) -> Result<(), BackupError> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(BackupError::LockLost(tenant.to_string()));
        }
        Ok(())
    }

    /// Stops renewing and deletes the lock object, unless it was lost to another run.
    pub(super) async fn release(self, cloud: &Cloud, plan: &Plan) {
        self.renew.abort();
        if self.lost.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = cloud
            .s3
            .delete_object()
            .bucket(&plan.destination_bucket)
            .key(lock_key(&plan.tenant))
            .send()
            .await
        {
            warn!(error = %CloudError::from_sdk("DeleteObject", &e), "could not release the backup lock; it expires by itself");
        }
    }
}
