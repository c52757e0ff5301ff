//! Every object a tenant's namespace must hold, as one value: built from the validated
//! spec, the operator's settings and what the dereference stage found (the public keys,
//! the data key, the bucket), with no I/O. `apply` applies it and deletes the tenant's
//! labelled objects it does not contain.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Service};

use super::backup::{BackupJobs, BackupObjects, build_backup};
use super::expose::{Exposed, build_exposure};
use super::restore_drill::build_drill;
use super::signing_key::build_public_key_config_map;
use super::{
    Foundation, MediaNodes, OperatorIdentity, RegionObjects, TenantKeyRef, foundation, regions,
};
use crate::controller::tenant::validate::Validated;

/// What the dereference stage found: made once, read every pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refs {
    /// The join-token public key (SPKI PEM).
    pub join_token_public_pem: String,
    /// The operator's control public key (SPKI PEM).
    pub control_public_pem: String,
    /// The tenant's data key.
    pub key: TenantKeyRef,
    /// The recordings bucket.
    pub bucket: String,
    /// What the cluster assigned to each exposed region's Service (ports, address).
    pub exposed: BTreeMap<String, Exposed>,
}

/// How the operator runs tenants' pods: its own settings, the same for every tenant.
#[derive(Clone, Copy, Debug)]
pub struct Settings<'a> {
    /// The operator's identity, when it binds itself the tenant-Secrets role.
    pub identity: Option<&'a OperatorIdentity>,
    /// How media nodes reach the cloud.
    pub media: &'a MediaNodes,
    /// How backup pods run.
    pub backup: &'a BackupJobs,
}

/// The tenant's objects, in the three waves `apply` applies them in.
pub struct Desired {
    /// Applied first: what makes the namespace safe and lets the operator read its Secrets.
    pub foundation: Foundation,
    /// The Services that expose media ports outside the cluster; what the cluster assigns
    /// to them is part of [`Refs`].
    pub exposure: Vec<Service>,
    /// Applied once the keys and the bucket are there.
    pub workloads: Workloads,
}

/// What runs in the namespace, and what it mounts.
pub struct Workloads {
    /// The join-token and control public keys the media nodes mount.
    pub public_keys: ConfigMap,
    /// Per region: Deployment, Service, PDB, HPA.
    pub regions: Vec<RegionObjects>,
    /// The backup CronJob and its account, with `spec.backup`.
    pub backup: Option<BackupObjects>,
    /// The restore-drill CronJob and its account, with `spec.backup.restoreDrill`.
    pub drill: Option<BackupObjects>,
}

/// Builds every object of the tenant: [`foundation`], [`build_exposure`] and [`workloads`].
pub fn desired(v: &Validated, refs: &Refs, settings: Settings<'_>) -> Desired {
    Desired {
        foundation: foundation(v, settings.identity, settings.media),
        exposure: build_exposure(v),
        workloads: workloads(v, refs, settings),
    }
}

/// The objects that depend on the keys and the bucket.
pub fn workloads(v: &Validated, refs: &Refs, settings: Settings<'_>) -> Workloads {
    let public_keys =
        build_public_key_config_map(v, &refs.join_token_public_pem, &refs.control_public_pem);
    Workloads {
        regions: regions(v, &public_keys, &refs.key, settings.media, &refs.exposed),
        backup: build_backup(v, settings.backup, &refs.bucket, &refs.key),
        drill: build_drill(v, settings.backup, &refs.key),
        public_keys,
    }
}

#[cfg(test)]
mod tests;
