//! Prometheus metrics under the `sanctum_` prefix.
//!
//! Counts reconciles, their duration and failures by error category, and every request
//! the operator sends to the Kubernetes API by HTTP method, so "a converged reconcile
//! writes nothing" can be checked from outside.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of reconcile counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// Kind being reconciled.
    pub controller: String,
}

/// Labels of the failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Kind being reconciled.
    pub controller: String,
    /// Short error category (see `Error::category`).
    pub reason: String,
}

/// Labels of the API request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method (GET, POST, PATCH, PUT, DELETE).
    pub method: String,
}

/// Labels of backup metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackupLabels {
    /// Tenant whose backup ran.
    pub tenant: String,
    /// `Succeeded` or `Failed`.
    pub outcome: String,
}

/// Labels of per-tenant gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// Tenant.
    pub tenant: String,
}

/// Labels of the tenant condition gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    /// Tenant.
    pub tenant: String,
    /// Condition type (`Ready`, `Stalled`, `MediaReady`, ...).
    pub condition: String,
}

/// All operator metrics, shared by the controllers and the HTTP endpoint.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ControllerLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: Family<ControllerLabels, Histogram>,
    api_requests: Family<RequestLabels, Counter>,
    audit_shipped: Counter,
    audit_failures: Counter,
    audit_pending: Gauge,
    audit_lag: Gauge<f64, AtomicU64>,
    audit_dropped: Counter,
    backups: Family<BackupLabels, Counter>,
    backup_last_success: Family<TenantLabels, Gauge>,
    drills: Family<BackupLabels, Counter>,
    drill_last_success: Family<TenantLabels, Gauge>,
    drill_failing: Family<TenantLabels, Gauge>,
    tenant_condition: Family<ConditionLabels, Gauge>,
    data_key_created: Family<TenantLabels, Gauge>,
    data_key_rotation: Family<TenantLabels, Gauge>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sanctum");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let api_requests = Family::<RequestLabels, Counter>::default();
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by error category",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            duration.clone(),
        );
        registry.register(
            "kube_api_requests",
            "Requests sent to the Kubernetes API, by method",
            api_requests.clone(),
        );
        let audit_shipped = Counter::default();
        let audit_failures = Counter::default();
        let audit_pending = Gauge::default();
        let audit_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "audit_records_shipped",
            "Audit records written to the audit bucket",
            audit_shipped.clone(),
        );
        registry.register(
            "audit_ship_failures",
            "Attempts to write audit records that the store refused (retried)",
            audit_failures.clone(),
        );
        registry.register(
            "audit_pending_records",
            "Audit records queued and not yet in the audit bucket",
            audit_pending.clone(),
        );
        registry.register(
            "audit_lag_seconds",
            "Age of the oldest audit record not yet in the audit bucket",
            audit_lag.clone(),
        );
        let audit_dropped = Counter::default();
        registry.register(
            "audit_records_dropped",
            "Audit records dropped because the queue was full (the store refused writes for long)",
            audit_dropped.clone(),
        );
        let backups = Family::<BackupLabels, Counter>::default();
        let backup_last_success = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "backups",
            "Backup runs the operator saw finish, by tenant and outcome",
            backups.clone(),
        );
        registry.register(
            "backup_last_success_timestamp_seconds",
            "When the tenant's last successful backup finished (alert when it gets old)",
            backup_last_success.clone(),
        );
        let drills = Family::<BackupLabels, Counter>::default();
        let drill_last_success = Family::<TenantLabels, Gauge>::default();
        let drill_failing = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "restore_drills",
            "Restore drills the operator saw finish, by tenant and outcome",
            drills.clone(),
        );
        registry.register(
            "restore_drill_last_success_timestamp_seconds",
            "When the tenant's newest successful restore drill finished, or its drills were scheduled if none has (alert when overdue)",
            drill_last_success.clone(),
        );
        registry.register(
            "restore_drill_failing",
            "1 while the tenant's last restore drill failed, 0 once one succeeds",
            drill_failing.clone(),
        );
        let tenant_condition = Family::<ConditionLabels, Gauge>::default();
        registry.register(
            "tenant_condition",
            "1 when the tenant's condition is True, 0 otherwise, as last written to its status",
            tenant_condition.clone(),
        );
        let data_key_created = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "tenant_data_key_created_timestamp_seconds",
            "When the data-key version new recordings use was made (alert when older than its rotation)",
            data_key_created.clone(),
        );
        let data_key_rotation = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "tenant_data_key_rotation_seconds",
            "How often the tenant's data key is to be rotated (spec.encryption.rotationDays)",
            data_key_rotation.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and reconciles",
            leader.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconciles,
            failures,
            duration,
            api_requests,
            audit_shipped,
            audit_failures,
            audit_pending,
            audit_lag,
            audit_dropped,
            backups,
            backup_last_success,
            drills,
            drill_last_success,
            drill_failing,
            tenant_condition,
            data_key_created,
            data_key_rotation,
            leader,
        }
    }
}

impl Metrics {
    /// Counts a reconcile and returns a guard that records its duration when dropped.
    pub fn reconcile_started(&self, controller: &str) -> ReconcileTimer {
        let labels = ControllerLabels {
            controller: controller.to_string(),
        };
        self.reconciles.get_or_create(&labels).inc();
        ReconcileTimer {
            histogram: self.duration.get_or_create(&labels).clone(),
            start: Instant::now(),
        }
    }

    /// Counts a failed reconcile under its error category.
    pub fn reconcile_failed(&self, controller: &str, reason: &str) {
        let labels = FailureLabels {
            controller: controller.to_string(),
            reason: reason.to_string(),
        };
        self.failures.get_or_create(&labels).inc();
    }

    /// Counts one request to the Kubernetes API.
    pub fn api_request(&self, method: &str) {
        self.api_requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
            })
            .inc();
    }

    /// Requests sent so far with this method.
    pub fn api_requests(&self, method: &str) -> u64 {
        self.api_requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
            })
            .get()
    }

    /// Counts audit records written to the store.
    pub fn audit_shipped(&self, records: u64) {
        self.audit_shipped.inc_by(records);
    }

    /// Counts a refused audit write.
    pub fn audit_ship_failed(&self) {
        self.audit_failures.inc();
    }

    /// Sets how many audit records wait to be written.
    pub fn audit_pending(&self, records: usize) {
        self.audit_pending
            .set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    /// Counts audit records dropped for a full queue.
    pub fn audit_dropped(&self, records: u64) {
        self.audit_dropped.inc_by(records);
    }

    /// Sets the age of the oldest unwritten audit record.
    pub fn audit_lag(&self, seconds: f64) {
        self.audit_lag.set(seconds);
    }

    /// Counts a finished backup run (once per run).
    pub fn backup_finished(&self, tenant: &str, succeeded: bool) {
        let outcome = if succeeded { "Succeeded" } else { "Failed" };
        self.backups
            .get_or_create(&BackupLabels {
                tenant: tenant.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Sets when the tenant's last successful backup finished (set on every reconcile
    /// that sees it, so the series survives a restart).
    pub fn backup_succeeded_at(&self, tenant: &str, finished_unix: i64) {
        self.backup_last_success
            .get_or_create(&TenantLabels {
                tenant: tenant.to_string(),
            })
            .set(finished_unix);
    }

    /// Counts a finished restore drill (once per run).
    pub fn drill_finished(&self, tenant: &str, succeeded: bool) {
        let outcome = if succeeded { "Succeeded" } else { "Failed" };
        self.drills
            .get_or_create(&BackupLabels {
                tenant: tenant.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Sets the drill gauges of a tenant that schedules drills (every reconcile, from its
    /// Jobs, so the series survive a restart): whether the last drill failed, and since
    /// when none has succeeded (the newest success, or the schedule's start).
    pub fn drill_state(&self, tenant: &str, failing: bool, baseline_unix: Option<i64>) {
        let labels = TenantLabels {
            tenant: tenant.to_string(),
        };
        self.drill_failing
            .get_or_create(&labels)
            .set(i64::from(failing));
        if let Some(at) = baseline_unix {
            self.drill_last_success.get_or_create(&labels).set(at);
        }
    }

    /// Drops the drill gauges of a tenant that no longer schedules drills.
    pub fn forget_drills(&self, tenant: &str) {
        let labels = TenantLabels {
            tenant: tenant.to_string(),
        };
        self.drill_failing.remove(&labels);
        self.drill_last_success.remove(&labels);
    }

    /// Sets the tenant's condition gauges from the conditions just written to its status.
    pub fn tenant_conditions(&self, tenant: &str, conditions: &[(String, bool)]) {
        for (condition, true_) in conditions {
            self.tenant_condition
                .get_or_create(&ConditionLabels {
                    tenant: tenant.to_string(),
                    condition: condition.clone(),
                })
                .set(i64::from(*true_));
        }
    }

    /// Sets when the current data-key version was made and how often it is to be rotated.
    pub fn data_key(&self, tenant: &str, created_unix: i64, rotation_days: i32) {
        let labels = TenantLabels {
            tenant: tenant.to_string(),
        };
        self.data_key_created
            .get_or_create(&labels)
            .set(created_unix);
        self.data_key_rotation
            .get_or_create(&labels)
            .set(i64::from(rotation_days) * 86_400);
    }

    /// Drops a deleted tenant's series, so no alert fires for a tenant that is gone.
    pub fn forget_tenant(&self, tenant: &str) {
        let labels = TenantLabels {
            tenant: tenant.to_string(),
        };
        self.data_key_created.remove(&labels);
        self.data_key_rotation.remove(&labels);
        self.backup_last_success.remove(&labels);
        self.forget_drills(tenant);
        for condition in sanctum_api::conditions::PART_TYPES.iter().chain(&[
            sanctum_api::conditions::READY,
            sanctum_api::conditions::RECONCILING,
            sanctum_api::conditions::STALLED,
            sanctum_api::conditions::RESTORE_DRILL_SUCCEEDED,
        ]) {
            self.tenant_condition.remove(&ConditionLabels {
                tenant: tenant.to_string(),
                condition: (*condition).to_string(),
            });
        }
    }

    /// Marks this replica as leading (1) or not (0).
    pub fn leading(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The text exposition format Prometheus scrapes.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Observes the reconcile duration when dropped, so every exit path is measured.
pub struct ReconcileTimer {
    histogram: Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_carry_the_prefix() {
        let m = Metrics::default();
        drop(m.reconcile_started("videotenant"));
        m.reconcile_failed("videotenant", "Apply");
        m.api_request("PATCH");
        let text = m.encode();
        assert!(
            text.contains("sanctum_reconciles_total{controller=\"videotenant\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "sanctum_reconcile_failures_total{controller=\"videotenant\",reason=\"Apply\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("sanctum_kube_api_requests_total{method=\"PATCH\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sanctum_reconcile_duration_seconds_count{controller=\"videotenant\"} 1"),
            "{text}"
        );
        assert_eq!(m.api_requests("PATCH"), 1);
        m.backup_finished("clinic-a", true);
        m.backup_succeeded_at("clinic-a", 1_800_000_000);
        m.backup_finished("clinic-a", false);
        m.drill_finished("clinic-a", false);
        m.drill_state("clinic-a", true, None);
        let text = m.encode();
        assert!(
            text.contains("sanctum_restore_drill_failing{tenant=\"clinic-a\"} 1")
                && !text.contains("sanctum_restore_drill_last_success_timestamp_seconds{"),
            "no baseline known, no time claimed: {text}"
        );
        m.drill_state("clinic-a", false, Some(1_800_000_200));
        let text = m.encode();
        for line in [
            "sanctum_restore_drills_total{tenant=\"clinic-a\",outcome=\"Failed\"} 1",
            "sanctum_restore_drill_failing{tenant=\"clinic-a\"} 0",
            "sanctum_restore_drill_last_success_timestamp_seconds{tenant=\"clinic-a\"} 1800000200",
        ] {
            assert!(text.contains(line), "{line} missing from {text}");
        }
        m.forget_drills("clinic-a");
        assert!(!m.encode().contains("sanctum_restore_drill_failing{"));
        for line in [
            "sanctum_backups_total{tenant=\"clinic-a\",outcome=\"Succeeded\"} 1",
            "sanctum_backups_total{tenant=\"clinic-a\",outcome=\"Failed\"} 1",
            "sanctum_backup_last_success_timestamp_seconds{tenant=\"clinic-a\"} 1800000000",
        ] {
            assert!(text.contains(line), "{line} missing from {text}");
        }
    }
}
