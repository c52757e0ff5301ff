//! The Secret holding the tenant's wrapped data keys, one entry per version.
//!
//! Only wrapped keys are ever stored: unwrapping needs the KMS key (or the local master
//! key) and the tenant's encryption context.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::{TenantKeyRef, namespaced_meta};
use crate::controller::tenant::validate::Validated;

/// Name of the Secret.
pub const SECRET_NAME: &str = "tenant-data-key";
/// Annotation with the version new recordings use.
pub const CURRENT_VERSION: &str = "sanctum.dev/current-key-version";
/// Annotation with the wrapping key's ARN (`local` for the local provider).
pub const WRAPPING_KEY: &str = "sanctum.dev/wrapping-key";
/// Tenant annotation asking for a new data-key version; any new value triggers one rotation.
pub const ROTATE_REQUEST: &str = "sanctum.dev/rotate-data-key";
/// Secret annotation holding the last rotation request that was carried out.
pub const ROTATION_HANDLED: &str = "sanctum.dev/rotation-handled";

/// Annotation recording when version `version` was made.
pub fn created_annotation(version: i32) -> String {
    format!("sanctum.dev/v{version}-created")
}

/// The Secret for a first data key (version 1), wrapped as `wrapped`.
pub fn build_tenant_key_secret(
    v: &Validated,
    key: &TenantKeyRef,
    wrapped: Vec<u8>,
    now: &str,
) -> Secret {
    let mut metadata = namespaced_meta(v, SECRET_NAME);
    metadata.annotations = Some(BTreeMap::from([
        (CURRENT_VERSION.to_string(), key.version.to_string()),
        (WRAPPING_KEY.to_string(), key.arn.clone()),
        (created_annotation(key.version), now.to_string()),
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

/// Whether a new version is due: the current one is older than `rotation_days`, or the
/// tenant asks for a rotation it has not had yet.
pub fn rotation_due(
    secret: &Secret,
    version: i32,
    requested: Option<&String>,
    rotation_days: i32,
    now: Timestamp,
) -> bool {
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    if let Some(requested) = requested
        && annotations.get(ROTATION_HANDLED) != Some(requested)
    {
        return true;
    }
    let created = annotations
        .get(&created_annotation(version))
        .and_then(|t| t.parse::<Timestamp>().ok())
        .or_else(|| secret.metadata.creation_timestamp.as_ref().map(|t| t.0));
    created.is_some_and(|created| {
        now.duration_since(created) >= SignedDuration::from_hours(24 * i64::from(rotation_days))
    })
}

/// A merge patch adding version `next` as current, guarded by the Secret's resourceVersion
/// so two racing reconciles cannot both add a version.
pub fn rotation_patch(
    secret: &Secret,
    next: &TenantKeyRef,
    wrapped: Vec<u8>,
    requested: Option<&String>,
    now: &str,
) -> Secret {
    let mut annotations = BTreeMap::from([
        (CURRENT_VERSION.to_string(), next.version.to_string()),
        (created_annotation(next.version), now.to_string()),
    ]);
    if let Some(requested) = requested {
        annotations.insert(ROTATION_HANDLED.to_string(), requested.clone());
    }
    Secret {
        metadata: ObjectMeta {
            resource_version: secret.metadata.resource_version.clone(),
            annotations: Some(annotations),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            format!("v{}", next.version),
            ByteString(wrapped),
        )])),
        ..Default::default()
    }
}

/// Name of the escrow copy in the operator's namespace: tenant name and a hash of its uid,
/// so a later tenant of the same name never shares it.
pub fn escrow_name(v: &Validated) -> String {
    let suffix = crate::hash::short_sha256(v.owner.uid.as_bytes(), 4);
    format!("tenant-key-escrow-{}-{suffix}", v.name)
}

/// The escrow copy of the wrapped data keys; it has no owner, so it outlives the tenant.
pub fn build_escrow_secret(v: &Validated, operator_namespace: &str, secret: &Secret) -> Secret {
    let mut labels = super::common_labels(v);
    labels.insert("sanctum.dev/tenant-uid".into(), v.owner.uid.clone());
    Secret {
        metadata: ObjectMeta {
            name: Some(escrow_name(v)),
            namespace: Some(operator_namespace.to_string()),
            labels: Some(labels),
            annotations: secret.metadata.annotations.clone(),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: secret.data.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;

    #[test]
    fn secret_holds_only_the_wrapped_version() {
        let v = fixtures::validated("clinic-a");
        let s =
            build_tenant_key_secret(&v, &fixtures::key(), vec![1, 2, 3], "2026-01-01T00:00:00Z");
        assert_eq!(current_version(&s), Some(1));
        let data = s.data.expect("data");
        assert_eq!(data.keys().collect::<Vec<_>>(), ["v1"]);
        assert_eq!(data["v1"].0, vec![1, 2, 3]);
    }

    #[test]
    fn rotation_is_due_by_age_or_by_a_new_request_only() {
        let v = fixtures::validated("clinic-a");
        let s = build_tenant_key_secret(&v, &fixtures::key(), vec![1], "2026-01-01T00:00:00Z");
        let at = |t: &str| t.parse::<Timestamp>().expect("timestamp");
        assert!(!rotation_due(&s, 1, None, 365, at("2026-06-01T00:00:00Z")));
        assert!(rotation_due(&s, 1, None, 365, at("2027-01-02T00:00:00Z")));
        let request = "2026-05-01".to_string();
        assert!(rotation_due(
            &s,
            1,
            Some(&request),
            365,
            at("2026-06-01T00:00:00Z")
        ));
        let mut next = fixtures::key();
        next.version = 2;
        let patch = rotation_patch(&s, &next, vec![2], Some(&request), "2026-06-01T00:00:00Z");
        let mut rotated = s.clone();
        rotated
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .extend(patch.metadata.annotations.clone().unwrap_or_default());
        rotated
            .data
            .get_or_insert_with(BTreeMap::new)
            .extend(patch.data.clone().unwrap_or_default());
        assert_eq!(current_version(&rotated), Some(2));
        assert!(
            rotated.data.as_ref().expect("data").contains_key("v1"),
            "old versions stay"
        );
        assert!(
            !rotation_due(&rotated, 2, Some(&request), 365, at("2026-06-01T00:00:00Z")),
            "a request rotates once"
        );
    }
}
