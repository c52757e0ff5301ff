//! The Secret holding the tenant's wrapped data keys, one entry per version.
//!
//! Only wrapped keys are ever stored: unwrapping needs the KMS key (or the local master
//! key) and the tenant's encryption context.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::{TenantKeyRef, namespaced_meta};
use crate::controller::tenant::validate::Validated;

/// Name of the Secret.
pub const SECRET_NAME: &str = "tenant-data-key";
/// Annotation with the version new recordings use.
pub const CURRENT_VERSION: &str = "sanctum.dev/current-key-version";
/// Annotation with the wrapping key's ARN (`local` for the local provider).
pub const WRAPPING_KEY: &str = "sanctum.dev/wrapping-key";

/// The Secret for a first data key (version 1), wrapped as `wrapped`.
pub fn build_tenant_key_secret(v: &Validated, key: &TenantKeyRef, wrapped: Vec<u8>) -> Secret {
    let mut metadata = namespaced_meta(v, SECRET_NAME);
    metadata.annotations = Some(BTreeMap::from([
        (CURRENT_VERSION.to_string(), key.version.to_string()),
        (WRAPPING_KEY.to_string(), key.arn.clone()),
    ]));
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            format!("v{}", key.version),
            ByteString(wrapped),
        )])),
        ..Default::default()
    }
}

/// Current version recorded on an existing Secret.
pub fn current_version(secret: &Secret) -> Option<i32> {
    let version: i32 = secret
        .metadata
        .annotations
        .as_ref()?
        .get(CURRENT_VERSION)?
        .parse()
        .ok()?;
    secret
        .data
        .as_ref()?
        .contains_key(&format!("v{version}"))
        .then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;

    #[test]
    fn secret_holds_only_the_wrapped_version() {
        let v = fixtures::validated("clinic-a");
        let s = build_tenant_key_secret(&v, &fixtures::key(), vec![1, 2, 3]);
        assert_eq!(current_version(&s), Some(1));
        let data = s.data.expect("data");
        assert_eq!(data.keys().collect::<Vec<_>>(), ["v1"]);
        assert_eq!(data["v1"].0, vec![1, 2, 3]);
    }
}
