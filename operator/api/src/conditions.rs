//! Condition types and reasons, in one place so status writers and readers agree.
//!
//! `Ready`, `Reconciling` and `Stalled` follow kstatus conventions so Flux and Argo CD
//! report tenant health honestly; the others describe one part of a tenant each.

/// The tenant is fully converged and every safeguard is in place.
pub const READY: &str = "Ready";
/// The operator is working towards the desired state (kstatus abnormal-true condition).
pub const RECONCILING: &str = "Reconciling";
/// Progress needs a human: invalid input or a permanent error (kstatus abnormal-true condition).
pub const STALLED: &str = "Stalled";
/// The tenant key exists and is wrapped by the KMS.
pub const KEY_READY: &str = "KeyReady";
/// The recordings bucket exists with its protections.
pub const BUCKET_READY: &str = "BucketReady";
/// NetworkPolicies isolate the tenant namespace.
pub const NETWORK_ISOLATED: &str = "NetworkIsolated";
/// Every region has its desired number of ready media nodes.
pub const MEDIA_READY: &str = "MediaReady";
/// The backup CronJob is scheduled.
pub const BACKUP_SCHEDULED: &str = "BackupScheduled";

/// Every per-part condition type, in the order status lists them.
pub const PART_TYPES: [&str; 5] = [
    KEY_READY,
    BUCKET_READY,
    NETWORK_ISOLATED,
    MEDIA_READY,
    BACKUP_SCHEDULED,
];

/// Reasons carried by conditions; `PascalCase` as the API conventions ask.
pub mod reasons {
    /// Everything converged.
    pub const RECONCILED: &str = "Reconciled";
    /// The controller is applying changes.
    pub const PROGRESSING: &str = "Progressing";
    /// Media nodes are starting.
    pub const WAITING_FOR_MEDIA: &str = "WaitingForMediaNodes";
    /// Some parts are not ready yet.
    pub const PARTS_NOT_READY: &str = "PartsNotReady";
    /// Backups run on the tenant's schedule; the last one (if any) succeeded.
    pub const SCHEDULED: &str = "Scheduled";
    /// Backups are scheduled, but the last run failed (an Event and a metric say why).
    pub const LAST_BACKUP_FAILED: &str = "LastBackupFailed";
    /// Nothing to do for this part (for example no backup configured).
    pub const NOT_CONFIGURED: &str = "NotConfigured";
    /// The spec cannot be reconciled as written.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A transient error; the operator retries with backoff.
    pub const RETRYING: &str = "Retrying";
    /// The tenant is being deleted.
    pub const DELETING: &str = "Deleting";
    /// The resource is applied.
    pub const APPLIED: &str = "Applied";
}
