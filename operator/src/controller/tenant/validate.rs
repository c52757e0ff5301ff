//! Checks that need more than the CRD schema can express, and the validated view
//! of a tenant the builders work from. Pure: no API calls.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use sanctum_api::{KeyProvider, VideoTenant, VideoTenantSpec};

/// A tenant that passed validation: everything the builders need, already resolved.
#[derive(Clone, Debug)]
pub struct Validated {
    /// Tenant name.
    pub name: String,
    /// Tenant namespace (`spec.namespace` or `vt-<name>`).
    pub namespace: String,
    /// Controller owner reference pointing at the tenant.
    pub owner: OwnerReference,
    /// The operator's namespace (its control calls come from there).
    pub operator_namespace: String,
    /// The spec as admitted.
    pub spec: VideoTenantSpec,
}

/// Why a tenant cannot be reconciled as written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Invalid {
    /// Objects read from the API always have a uid; without one no owner reference can be made.
    #[error("tenant has no metadata.uid")]
    MissingUid,
    /// System namespaces and the operator's own must never hold tenant workloads.
    #[error("namespace {namespace:?} is reserved; choose another spec.namespace")]
    ReservedNamespace {
        /// The namespace asked for.
        namespace: String,
    },
    /// The installation does not allow this key provider (`--key-providers`).
    #[error("key provider {provider} is not allowed by this installation (allowed: {allowed})")]
    KeyProviderNotAllowed {
        /// The provider asked for.
        provider: String,
        /// What is allowed.
        allowed: String,
    },
}

/// Validates `tenant` for an operator running in `operator_namespace` that allows the
/// `key_providers` listed.
pub fn validate(
    tenant: &VideoTenant,
    operator_namespace: &str,
    key_providers: &[KeyProvider],
) -> Result<Validated, Invalid> {
    let owner = tenant
        .controller_owner_ref(&())
        .ok_or(Invalid::MissingUid)?;
    if owner.uid.is_empty() {
        return Err(Invalid::MissingUid);
    }
    let namespace = tenant.namespace_name();
    let reserved = ["default", operator_namespace].contains(&namespace.as_str())
        || namespace.starts_with("kube-");
    if reserved {
        return Err(Invalid::ReservedNamespace { namespace });
    }
    let provider = tenant.spec.encryption.provider;
    if !key_providers.contains(&provider) {
        return Err(Invalid::KeyProviderNotAllowed {
            provider: provider.as_str().into(),
            allowed: key_providers
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(Validated {
        name: tenant.name_any(),
        namespace,
        owner,
        operator_namespace: operator_namespace.to_string(),
        spec: tenant.spec.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;

    const ALL: &[KeyProvider] = &[KeyProvider::Aws, KeyProvider::Local];

    #[test]
    fn a_key_provider_the_installation_forbids_is_refused() {
        let mut t = fixtures::tenant("clinic-a");
        t.spec.encryption.provider = KeyProvider::Local;
        assert_eq!(
            validate(&t, "sanctum-system", &[KeyProvider::Aws]).err(),
            Some(Invalid::KeyProviderNotAllowed {
                provider: "local".into(),
                allowed: "aws".into()
            })
        );
        assert!(validate(&t, "sanctum-system", ALL).is_ok());
    }

    #[test]
    fn default_namespace_is_derived_from_the_name() {
        let v = validate(&fixtures::tenant("clinic-a"), "sanctum-system", ALL).expect("valid");
        assert_eq!(v.namespace, "vt-clinic-a");
        assert_eq!(v.owner.kind, "VideoTenant");
        assert_eq!(v.owner.controller, Some(true));
    }

    #[test]
    fn reserved_namespaces_are_refused() {
        for ns in ["default", "kube-system", "kube-anything", "sanctum-system"] {
            let mut t = fixtures::tenant("clinic-a");
            t.spec.namespace = Some(ns.to_string());
            assert_eq!(
                validate(&t, "sanctum-system", ALL).expect_err("must be refused"),
                Invalid::ReservedNamespace {
                    namespace: ns.to_string()
                }
            );
        }
    }

    #[test]
    fn objects_without_uid_are_refused() {
        let mut t = fixtures::tenant("clinic-a");
        t.metadata.uid = None;
        assert_eq!(
            validate(&t, "sanctum-system", ALL).expect_err("must be refused"),
            Invalid::MissingUid
        );
    }
}
