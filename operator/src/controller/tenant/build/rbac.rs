//! API identities in the tenant namespace: the media nodes' ServiceAccount (no API
//! rights, no token) and the operator's own binding of the tenant-Secrets role.
//!
//! The media node never calls the Kubernetes API (its keys are mounted, its recordings
//! reported through the signed control API), so no Role is bound to its account and no
//! token is mounted: an internet-facing pod that is taken over holds no API credential.
//! The operator holds no Secret rights cluster-wide; it grants itself the chart's
//! tenant-Secrets role in each tenant namespace it made, and nowhere else.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};

use super::irsa::{self, RoleTemplate};
use super::{MEDIA_SERVICE_ACCOUNT, namespaced_meta};
use crate::controller::tenant::validate::Validated;

/// Name of the operator's RoleBinding in a tenant namespace.
pub const OPERATOR_BINDING: &str = "sanctum-operator";

/// Who the operator runs as and the role it binds itself in tenant namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorIdentity {
    /// The operator's ServiceAccount (in the operator's namespace).
    pub service_account: String,
    /// The ClusterRole granting the tenant Secrets.
    pub secrets_role: String,
}

/// The operator's binding of the tenant-Secrets role to itself, in the tenant namespace.
pub fn build_operator_binding(v: &Validated, me: &OperatorIdentity) -> RoleBinding {
    RoleBinding {
        metadata: namespaced_meta(v, OPERATOR_BINDING),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: me.secrets_role.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: me.service_account.clone(),
            namespace: Some(v.operator_namespace.clone()),
            ..Default::default()
        }]),
    }
}

/// The media nodes' ServiceAccount: no API token; with `role`, the tenant's IAM role.
pub fn build_service_account(v: &Validated, role: Option<&RoleTemplate>) -> ServiceAccount {
    let mut metadata = namespaced_meta(v, MEDIA_SERVICE_ACCOUNT);
    metadata.annotations = irsa::annotations(role, &v.name);
    ServiceAccount {
        metadata,
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;

    #[test]
    fn media_nodes_get_their_tenants_role_and_no_api_token() {
        let v = fixtures::validated("clinic-a");
        let role: RoleTemplate = "arn:aws:iam::111122223333:role/sanctum-media-{tenant}"
            .parse()
            .expect("template");
        let sa = build_service_account(&v, Some(&role));
        assert_eq!(sa.automount_service_account_token, Some(false));
        assert_eq!(
            sa.metadata.annotations.expect("annotated")[irsa::ROLE_ARN_ANNOTATION],
            "arn:aws:iam::111122223333:role/sanctum-media-clinic-a"
        );
        assert_eq!(build_service_account(&v, None).metadata.annotations, None);
    }

    #[test]
    fn the_operator_binds_only_the_secrets_role_to_itself_in_the_tenant_namespace() {
        let v = fixtures::validated("clinic-a");
        let rb = build_operator_binding(
            &v,
            &OperatorIdentity {
                service_account: "sanctum".into(),
                secrets_role: "sanctum-tenant-secrets".into(),
            },
        );
        assert_eq!(rb.metadata.namespace.as_deref(), Some("vt-clinic-a"));
        assert_eq!(
            (rb.role_ref.kind.as_str(), rb.role_ref.name.as_str()),
            ("ClusterRole", "sanctum-tenant-secrets")
        );
        let subjects = rb.subjects.expect("subjects");
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].namespace.as_deref(), Some("sanctum-system"));
        assert_eq!(subjects[0].name, "sanctum");
    }

    #[test]
    fn the_media_account_mounts_no_token() {
        let sa = build_service_account(&fixtures::validated("clinic-a"), None);
        assert_eq!(sa.automount_service_account_token, Some(false));
        assert_eq!(sa.metadata.name.as_deref(), Some("media-node"));
    }
}
