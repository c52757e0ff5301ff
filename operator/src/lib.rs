//! The Sanctum operator: reconciles `VideoTenant` resources into isolated video tenants.
//!
//! `main.rs` only parses flags and calls into here, so the e2e tests and benchmarks
//! can reuse the same pieces.

#![forbid(unsafe_code)]

pub mod audit;
pub mod backup;
pub mod cli;
pub mod cloud;
pub mod controller;
pub mod crds;
pub mod evidence;
pub mod hash;
pub mod http;
pub mod metrics;
pub mod reference;
pub mod telemetry;

/// Field manager for every server-side apply, so field ownership stays with one owner.
pub const FIELD_MANAGER: &str = "sanctum-operator";
/// Name other components and Events know the operator by.
pub const CONTROLLER_NAME: &str = "sanctum.dev/operator";
