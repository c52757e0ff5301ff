//! The recordings bucket: which buckets the tenant may never use, and provisioning of its
//! own (created or repaired, with a Warning Event for what was repaired).

use super::*;

impl Run<'_> {
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
        let others: Vec<_> = self.ctx.tenants.iter().flat_map(|s| s.state()).collect();
        for other in others.iter().filter_map(|t| t.0.as_ref().ok()) {
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
    pub(super) async fn ensure_bucket(
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
