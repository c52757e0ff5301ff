//! The tenant namespace, with Pod Security Admission enforcing `restricted`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sanctum_api::labels;

use super::common_labels;
use crate::controller::tenant::validate::Validated;

/// Builds the namespace: PSA `restricted` in enforce, audit and warn modes, and the
/// recording policy as labels for the Recording admission policy.
pub fn build_namespace(v: &Validated) -> Namespace {
    let mut all = common_labels(v);
    for mode in ["enforce", "audit", "warn"] {
        all.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            "restricted".to_string(),
        );
        all.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            "latest".to_string(),
        );
    }
    let recording = if v.spec.recording.enabled {
        "enabled"
    } else {
        "disabled"
    };
    all.insert(labels::RECORDING.to_string(), recording.to_string());
    let consent = if v.spec.recording.require_consent {
        "required"
    } else {
        "optional"
    };
    all.insert(labels::RECORDING_CONSENT.to_string(), consent.to_string());
    Namespace {
        metadata: ObjectMeta {
            name: Some(v.namespace.clone()),
            labels: Some(all),
            annotations: Some(BTreeMap::from([(
                "sanctum.dev/display-name".to_string(),
                v.spec.display_name.clone(),
            )])),
            owner_references: Some(vec![v.owner.clone()]),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Whether `ns` is this tenant's: its controller owner reference names the tenant's uid.
/// Labels prove nothing (whoever creates a namespace sets them), so a namespace someone
/// made in advance under the tenant's name is never adopted, nor deleted with the tenant.
pub fn is_owned_by(ns: &Namespace, tenant_uid: &str) -> bool {
    ns.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.kind == "VideoTenant" && o.uid == tenant_uid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;

    #[test]
    fn only_a_namespace_owned_by_the_tenants_uid_is_its_own() {
        let v = fixtures::validated("clinic-a");
        let ours = build_namespace(&v);
        assert!(is_owned_by(&ours, &v.owner.uid));
        // Pre-created with the tenant's labels, but no owner: a squatter's namespace.
        let mut squatted = ours.clone();
        squatted.metadata.owner_references = None;
        assert!(!is_owned_by(&squatted, &v.owner.uid));
        // Owned by an earlier tenant of the same name.
        assert!(!is_owned_by(&ours, "another-uid"));
        // An owner reference that is not the controller does not count.
        let mut weak = ours;
        if let Some(refs) = weak.metadata.owner_references.as_mut() {
            refs[0].controller = None;
        }
        assert!(!is_owned_by(&weak, &v.owner.uid));
    }

    #[test]
    fn namespace_enforces_restricted_pod_security() {
        let ns = build_namespace(&fixtures::validated("clinic-a"));
        let l = ns.metadata.labels.expect("labels");
        assert_eq!(ns.metadata.name.as_deref(), Some("vt-clinic-a"));
        assert_eq!(l["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(l["pod-security.kubernetes.io/audit"], "restricted");
        assert_eq!(l["pod-security.kubernetes.io/warn"], "restricted");
        assert_eq!(l[labels::TENANT], "clinic-a");
        assert_eq!(l[labels::MANAGED_BY], "sanctum");
        assert_eq!(l[labels::RECORDING_CONSENT], "required");
        let owner = &ns.metadata.owner_references.expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("VideoTenant", "clinic-a", Some(true))
        );
    }
}
