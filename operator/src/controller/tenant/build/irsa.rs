//! IAM roles of a tenant's pods (IRSA on EKS): one role per tenant, named from a template,
//! so that the policy of each names only that tenant's bucket, key and prefixes.

use std::collections::BTreeMap;

/// The annotation EKS reads to give a ServiceAccount's pods an IAM role.
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// What a template's tenant name stands in for.
pub const TENANT_PLACEHOLDER: &str = "{tenant}";

/// An IAM role ARN in which `{tenant}` stands for the tenant's name: every tenant's pods get
/// a role of their own. Without the placeholder, all tenants share the role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleTemplate(String);

impl std::str::FromStr for RoleTemplate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let well_formed = s.starts_with("arn:")
            && s.split(':').count() == 6
            && s.split(':').nth(5).is_some_and(|r| r.starts_with("role/"));
        if !well_formed {
            return Err(format!(
                "{s:?} is not an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)"
            ));
        }
        let rest = s.replace(TENANT_PLACEHOLDER, "");
        if rest.contains(['{', '}']) {
            return Err(format!(
                "{s:?}: only {TENANT_PLACEHOLDER} may stand for something in a role ARN"
            ));
        }
        Ok(Self(s.to_string()))
    }
}

impl RoleTemplate {
    /// The role of `tenant`'s pods.
    pub fn for_tenant(&self, tenant: &str) -> String {
        self.0.replace(TENANT_PLACEHOLDER, tenant)
    }

    /// Whether each tenant gets a role of its own.
    pub fn per_tenant(&self) -> bool {
        self.0.contains(TENANT_PLACEHOLDER)
    }
}

/// The ServiceAccount annotations that give `tenant`'s pods `role`, if there is one.
pub fn annotations(role: Option<&RoleTemplate>, tenant: &str) -> Option<BTreeMap<String, String>> {
    role.map(|r| BTreeMap::from([(ROLE_ARN_ANNOTATION.to_string(), r.for_tenant(tenant))]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tenant_gets_its_own_role_from_the_template() {
        let t: RoleTemplate = "arn:aws:iam::111122223333:role/sanctum-media-{tenant}"
            .parse()
            .expect("template");
        assert!(t.per_tenant());
        assert_eq!(
            t.for_tenant("clinic-a"),
            "arn:aws:iam::111122223333:role/sanctum-media-clinic-a"
        );
        let shared: RoleTemplate = "arn:aws:iam::111122223333:role/sanctum-backup"
            .parse()
            .expect("one role");
        assert!(!shared.per_tenant());
        assert_eq!(
            annotations(Some(&shared), "clinic-b").expect("annotated")[ROLE_ARN_ANNOTATION],
            "arn:aws:iam::111122223333:role/sanctum-backup"
        );
        assert_eq!(annotations(None, "clinic-b"), None);
    }

    #[test]
    fn anything_but_a_role_arn_with_the_tenant_placeholder_is_refused() {
        for bad in [
            "sanctum-backup",
            "arn:aws:iam::111122223333:user/someone",
            "arn:aws:s3:::sanctum-{tenant}",
            "arn:aws:iam::111122223333:role/sanctum-{namespace}",
        ] {
            assert!(bad.parse::<RoleTemplate>().is_err(), "{bad} accepted");
        }
    }
}
