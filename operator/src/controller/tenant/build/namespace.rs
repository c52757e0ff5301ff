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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;

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
