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

/// The last scheduled restore drill restored, checked and opened its backup (present only
/// when `spec.backup.restoreDrill` is set; it does not gate `Ready`).
pub const RESTORE_DRILL_SUCCEEDED: &str = "RestoreDrillSucceeded";

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
    /// The last restore drill restored every object, each matching its SHA-256, and opened
    /// a recording.
    pub const DRILL_SUCCEEDED: &str = "DrillSucceeded";
    /// The last restore drill failed (the message says why; an Event and a metric too).
    pub const DRILL_FAILED: &str = "DrillFailed";
    /// Drills are scheduled; none has finished yet.
    pub const NO_DRILL_YET: &str = "NoDrillYet";
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

/// Condition types and reasons of a `Recording`.
pub mod recording {
    /// The stored object was re-read and matches `status.sha256` (or not, with the reason).
    pub const INTEGRITY_VERIFIED: &str = "IntegrityVerified";
    /// Deleting the resource is refused (legal hold).
    pub const DELETION_BLOCKED: &str = "DeletionBlocked";

    /// Reasons of a `Recording`'s conditions and Events.
    pub mod reasons {
        /// The tenant does not allow recordings.
        pub const RECORDING_DISABLED: &str = "RecordingDisabled";
        /// The tenant requires consent and none is recorded.
        pub const CONSENT_REQUIRED: &str = "ConsentRequired";
        /// `spec.stop` was set before recording started.
        pub const STOPPED_BEFORE_START: &str = "StoppedBeforeStart";
        /// The tenant has no bucket yet.
        pub const TENANT_NOT_READY: &str = "TenantNotReady";
        /// No media node hosts a publisher in the room (yet).
        pub const ROOM_NOT_ACTIVE: &str = "RoomNotActive";
        /// The node waits for the room's host to confirm the patient's consent.
        pub const AWAITING_HOST: &str = "AwaitingHost";
        /// The room's host declined the recording; nothing was recorded.
        pub const HOST_DECLINED: &str = "HostDeclined";
        /// A media node is recording the room (also the Event when it starts: `Started`).
        pub const RECORDING: &str = "Recording";
        /// Event: recording started on a node.
        pub const STARTED: &str = "Started";
        /// The node is completing the upload.
        pub const FINALIZING: &str = "Finalizing";
        /// The node that recorded is gone, or is not one of the tenant's nodes.
        pub const MEDIA_NODE_LOST: &str = "MediaNodeLost";
        /// The node reported a failure.
        pub const RECORDING_FAILED: &str = "RecordingFailed";
        /// The node named another bucket or key than the operator asked for.
        pub const NODE_REPORT_MISMATCH: &str = "NodeReportMismatch";
        /// The stored object does not match the checksum.
        pub const CHECKSUM_MISMATCH: &str = "ChecksumMismatch";
        /// The stored object matches the checksum.
        pub const CHECKSUM_MATCHES: &str = "ChecksumMatches";
        /// The stored object is gone.
        pub const OBJECT_MISSING: &str = "ObjectMissing";
        /// The object restored from the sealed version replaces it.
        pub const RELINKED: &str = "Relinked";
        /// Stored, encrypted and checksummed.
        pub const SEALED: &str = "Sealed";
        /// Retention has passed.
        pub const EXPIRED: &str = "Expired";
        /// The object and its wrapped data key were deleted after retention.
        pub const DELETED: &str = "Deleted";
        /// Deletion refused while on legal hold.
        pub const LEGAL_HOLD: &str = "LegalHold";
        /// The resource was deleted before retention ended; the object stays until then.
        pub const KEPT_FOR_RETENTION: &str = "KeptForRetention";
    }
}
