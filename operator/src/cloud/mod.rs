//! KMS and S3: per-tenant keys and recording buckets, against AWS or any compatible endpoint.
//!
//! Every call is idempotent and starts by finding what an earlier, possibly crashed,
//! attempt made. Nothing here logs key material: only key ids, ARNs and bucket names.
//! How clients are made, bucket ownership, generic object helpers and errors are
//! `sanctum_cloud`'s, shared with the media node and the audit trail.

pub mod buckets;
pub mod keys;

pub use sanctum_cloud::{CloudConfig, CloudError, OwnerSetting};
pub use sanctum_cloud::{kms, objects};

/// Clients shared by all reconciles.
pub type Cloud = sanctum_cloud::Clients;
