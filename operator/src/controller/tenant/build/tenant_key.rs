//! The Secret holding the tenant's wrapped data keys, one entry per version, and, for the
//! `local` provider, the tenant's key-encryption key.
//!
//! With `aws` only wrapped keys are ever stored: unwrapping needs the KMS key and the
//! tenant's encryption context. With `local` there is no KMS: the tenant's own 256-bit
//! key-encryption key is kept in the operator's namespace (outliving the tenant unless it
//! is crypto-shredded) and copied into the tenant namespace for its media nodes.

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

/// Secret in the tenant namespace holding the `local` key-encryption key for media nodes.
pub const LOCAL_KEY_SECRET: &str = "tenant-local-key";
/// Its data key (and the file name media nodes read it from).
pub const LOCAL_KEY_FILE: &str = "key";

/// Annotation recording when version `version` was made.
pub fn created_annotation(version: i32) -> String {
    format!("sanctum.dev/v{version}-created")
}

/// Every version `annotations` records the making of, oldest first, with its time.
pub fn created_versions(annotations: &BTreeMap<String, String>) -> Vec<(i32, String)> {
    let mut made: Vec<(i32, String)> = annotations
        .iter()
        .filter_map(|(k, v)| {
            let version = k.strip_prefix("sanctum.dev/v")?.strip_suffix("-created")?;
            let version: i32 = version.parse().ok()?;
            (*k == created_annotation(version)).then(|| (version, v.clone()))
        })
        .collect();
    made.sort();
    made
}

/// The version new recordings use, as `annotations` name it.
pub fn announced_version(annotations: &BTreeMap<String, String>) -> Option<i32> {
    annotations.get(CURRENT_VERSION)?.parse().ok()
}

/// What the Event and audit record of a rotation say, followed by the new version.
pub const ROTATED: &str = "rotated the tenant data key to v";

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
    let version = announced_version(secret.metadata.annotations.as_ref()?)?;
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

/// Name of the `local` key-encryption key in the operator's namespace: like the escrow
/// copy, it names the tenant's uid, so a re-created tenant of the same name gets its own.
pub fn local_kek_name(v: &Validated) -> String {
    let suffix = crate::hash::short_sha256(v.owner.uid.as_bytes(), 4);
    format!("tenant-local-kek-{}-{suffix}", v.name)
}

/// The `local` key-encryption key as the operator keeps it: immutable, without an owner
/// (it outlives the tenant under `Retain`), labelled with the tenant's uid so that
/// crypto-shredding finds it with the escrow copy.
pub fn build_local_kek_secret(v: &Validated, operator_namespace: &str, key: &[u8]) -> Secret {
    let mut labels = super::common_labels(v);
    labels.insert("sanctum.dev/tenant-uid".into(), v.owner.uid.clone());
    Secret {
        metadata: ObjectMeta {
            name: Some(local_kek_name(v)),
            namespace: Some(operator_namespace.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        immutable: Some(true),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            LOCAL_KEY_FILE.to_string(),
            ByteString(key.to_vec()),
        )])),
        ..Default::default()
    }
}

/// The copy of the `local` key-encryption key media nodes mount, owned by the tenant
/// (mutable, so that a copy changed by hand is repaired by the next apply).
pub fn build_local_key_copy(v: &Validated, key: &[u8]) -> Secret {
    Secret {
        metadata: namespaced_meta(v, LOCAL_KEY_SECRET),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            LOCAL_KEY_FILE.to_string(),
            ByteString(key.to_vec()),
        )])),
        ..Default::default()
    }
}

/// The 32-byte key of a key-encryption-key Secret, if it holds one.
pub fn local_key_bytes(secret: &Secret) -> Option<&[u8]> {
    let bytes = &secret.data.as_ref()?.get(LOCAL_KEY_FILE)?.0;
    (bytes.len() == 32).then_some(bytes.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;

    #[test]
    fn created_versions_are_read_in_order_and_lookalikes_ignored() {
        let annotations = BTreeMap::from([
            (created_annotation(2), "2026-12-02T00:00:00Z".to_string()),
            (created_annotation(1), "2026-12-01T00:00:00Z".to_string()),
            ("sanctum.dev/v01-created".to_string(), "x".to_string()),
            ("sanctum.dev/vx-created".to_string(), "y".to_string()),
            (CURRENT_VERSION.to_string(), "2".to_string()),
        ]);
        let made = created_versions(&annotations);
        assert_eq!(
            made,
            [
                (1, "2026-12-01T00:00:00Z".to_string()),
                (2, "2026-12-02T00:00:00Z".to_string())
            ]
        );
        assert_eq!(announced_version(&annotations), Some(2));
    }

    #[test]
    fn local_keys_are_per_tenant_uid_and_crypto_shredding_finds_them() {
        let v = fixtures::validated("clinic-a");
        let kek = build_local_kek_secret(&v, "sanctum-system", &[7; 32]);
        assert_eq!(kek.immutable, Some(true));
        assert!(
            kek.metadata.owner_references.is_none(),
            "outlives the tenant"
        );
        let labels = kek.metadata.labels.clone().expect("labels");
        assert_eq!(labels["sanctum.dev/tenant-uid"], v.owner.uid);
        assert_eq!(labels[sanctum_api::labels::TENANT], "clinic-a");
        let mut again = fixtures::validated("clinic-a");
        again.owner.uid = "another-uid".into();
        assert_ne!(local_kek_name(&v), local_kek_name(&again));
        let copy = build_local_key_copy(&v, &[7; 32]);
        assert_eq!(
            copy.metadata.namespace.as_deref(),
            Some(v.namespace.as_str())
        );
        assert_eq!(
            copy.metadata.owner_references.as_ref().map(Vec::len),
            Some(1)
        );
        assert_eq!(local_key_bytes(&copy), Some(&[7u8; 32][..]));
        assert_eq!(local_key_bytes(&build_local_key_copy(&v, &[1; 16])), None);
    }

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
