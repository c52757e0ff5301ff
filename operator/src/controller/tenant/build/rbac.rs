//! Identity and API permissions of the media nodes: only what recording needs.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::{MEDIA_SERVICE_ACCOUNT, namespaced_meta};
use crate::controller::tenant::validate::Validated;

/// The media nodes' ServiceAccount.
pub fn build_service_account(v: &Validated) -> ServiceAccount {
    ServiceAccount {
        metadata: namespaced_meta(v, MEDIA_SERVICE_ACCOUNT),
        ..Default::default()
    }
}

/// Read the tenant's Recordings and report their progress; nothing else.
///
/// No Secrets: keys are mounted into the pods, never read through the API.
pub fn build_role(v: &Validated) -> Role {
    let rule = |resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![sanctum_api::GROUP.to_string()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    Role {
        metadata: namespaced_meta(v, MEDIA_SERVICE_ACCOUNT),
        rules: Some(vec![
            rule(&["recordings"], &["get", "list", "watch"]),
            rule(&["recordings/status"], &["get", "patch"]),
        ]),
    }
}

/// Grants the media-node Role to the media-node ServiceAccount only.
pub fn build_role_binding(v: &Validated) -> RoleBinding {
    RoleBinding {
        metadata: namespaced_meta(v, MEDIA_SERVICE_ACCOUNT),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: MEDIA_SERVICE_ACCOUNT.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: MEDIA_SERVICE_ACCOUNT.into(),
            namespace: Some(v.namespace.clone()),
            ..Default::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;

    #[test]
    fn role_is_least_privilege() {
        let role = build_role(&fixtures::validated("clinic-a"));
        for rule in role.rules.expect("rules") {
            assert_eq!(
                rule.api_groups.as_deref(),
                Some(&["sanctum.dev".to_string()][..])
            );
            for r in rule.resources.expect("resources") {
                assert!(r.starts_with("recordings"), "unexpected resource {r}");
            }
            for verb in &rule.verbs {
                assert!(
                    ![
                        "*",
                        "create",
                        "delete",
                        "update",
                        "deletecollection",
                        "escalate",
                        "bind"
                    ]
                    .contains(&verb.as_str())
                );
            }
        }
    }

    #[test]
    fn binding_names_only_the_media_account_in_the_tenant_namespace() {
        let rb = build_role_binding(&fixtures::validated("clinic-a"));
        let subjects = rb.subjects.expect("subjects");
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].namespace.as_deref(), Some("vt-clinic-a"));
        assert_eq!(rb.role_ref.kind, "Role", "never a ClusterRole");
    }
}
