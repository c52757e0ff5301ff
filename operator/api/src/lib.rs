//! Custom resource types of Sanctum (`sanctum.dev/v1alpha1`): the API users write.
//!
//! This crate holds types, schema rules and shared constants only. It must not talk to
//! a cluster: the operator, the media node and the e2e tests all depend on it.

#![forbid(unsafe_code)]
// `printcolumn(type_ = ...)` repeats by design in kube's derive; clippy reads it as a duplicate.
#![allow(clippy::duplicated_attributes)]

pub mod conditions;
pub mod control;
pub mod env;
pub mod labels;
pub mod recording;
pub mod tenant;

pub use recording::{
    Consent, ConsentMethod, Recording, RecordingPhase, RecordingSpec, RecordingStatus,
};
pub use tenant::{
    AuditAnchor, AutoscalingSpec, BackupDestination, BackupSpec, DeletionPolicy, EncryptionSpec,
    ExposeMode, ExposeSpec, KeyProvider, MediaPorts, MediaSpec, NetworkSpec, NodePorts,
    ObjectLockMode, ObjectLockSpec, RecordingPolicy, RegionSpec, RegionStatus, RestoreDrillSpec,
    StorageSpec, TurnSpec, VideoTenant, VideoTenantSpec, VideoTenantStatus,
};

/// API group shared by every Sanctum resource, so RBAC and CRD names stay consistent.
pub const GROUP: &str = "sanctum.dev";
