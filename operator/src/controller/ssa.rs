//! Server-side apply that writes only when something would change, and pruning of
//! objects a tenant no longer wants.
//!
//! A plain SSA patch of an unchanged object is a no-op for etcd but still a write
//! request; a controller with a thousand converged tenants would send thousands of them
//! every resync. So each applied object carries a hash of what was applied, and the
//! patch is skipped when the live object still carries that hash *and* still holds every
//! field we set (so drift made by someone else is repaired).

use std::collections::BTreeSet;
use std::fmt::Debug;

use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Annotation holding the hash of the last applied configuration.
pub const APPLIED_HASH: &str = "sanctum.dev/applied-hash";

/// Result of [`apply`]: the live object and whether a write was sent.
#[derive(Debug)]
pub struct Applied<K> {
    /// The object as the API server holds it after this call.
    pub object: K,
    /// True when a patch was sent.
    pub changed: bool,
}

/// Applies `desired` with server-side apply under [`crate::FIELD_MANAGER`], unless the
/// live object already matches it. `cached` is the live object as a watch last saw it
/// (`Some(None)`: not seen): when it matches, nothing is sent at all; when it is missing
/// or differs, the API server is asked before writing, since a watch can trail a write
/// of ours and a patch that changes nothing must not be reported as a change.
pub async fn apply<K>(
    api: &Api<K>,
    mut desired: K,
    cached: Option<Option<K>>,
) -> Result<Applied<K>, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = desired.name_any();
    let hash = config_hash(&desired);
    desired
        .annotations_mut()
        .insert(APPLIED_HASH.to_string(), hash.clone());
    let matches = |live: &K| {
        live.annotations().get(APPLIED_HASH) == Some(&hash) && is_applied(&desired, live)
    };
    if let Some(Some(live)) = cached
        && matches(&live)
    {
        return Ok(Applied {
            object: live,
            changed: false,
        });
    }
    if let Some(live) = api.get_opt(&name).await?
        && matches(&live)
    {
        return Ok(Applied {
            object: live,
            changed: false,
        });
    }
    let params = PatchParams::apply(crate::FIELD_MANAGER).force();
    let object = api.patch(&name, &params, &Patch::Apply(&desired)).await?;
    Ok(Applied {
        object,
        changed: true,
    })
}

/// Creates `object` only if no object of that name exists; never updates it.
///
/// For objects that must not change once made, such as key material.
pub async fn create_once<K>(api: &Api<K>, object: &K) -> Result<Applied<K>, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    match api.create(&Default::default(), object).await {
        Ok(created) => Ok(Applied {
            object: created,
            changed: true,
        }),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Applied {
            object: api.get(&object.name_any()).await?,
            changed: false,
        }),
        Err(e) => Err(e),
    }
}

/// Deletes every object matching `selector` whose name is not in `keep`; returns the
/// deleted names. `cached` are the matching objects as a watch last saw them; without
/// them they are listed from the API server.
pub async fn prune<K>(
    api: &Api<K>,
    selector: &str,
    keep: &BTreeSet<String>,
    cached: Option<Vec<K>>,
) -> Result<Vec<String>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let found: Vec<(String, bool)> = match cached {
        Some(objects) => objects
            .iter()
            .map(|o| (o.name_any(), o.meta().deletion_timestamp.is_some()))
            .collect(),
        None => api
            .list_metadata(&ListParams::default().labels(selector))
            .await?
            .into_iter()
            .map(|o| (o.name_any(), o.metadata.deletion_timestamp.is_some()))
            .collect(),
    };
    let mut deleted = Vec::new();
    for (name, deleting) in found {
        if !keep.contains(&name) && !deleting {
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => deleted.push(name),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(deleted)
}

/// Stable hash of an object's desired configuration (hex, 16 characters).
pub fn config_hash<K: Serialize>(desired: &K) -> String {
    let bytes = serde_json::to_vec(desired).expect("Kubernetes objects serialize to JSON");
    crate::hash::short_sha256(&bytes, 8)
}

/// True when every field set in `desired` holds the same value in `live`.
pub fn is_applied<K: Serialize>(desired: &K, live: &K) -> bool {
    let desired = serde_json::to_value(desired).expect("Kubernetes objects serialize to JSON");
    let live = serde_json::to_value(live).expect("Kubernetes objects serialize to JSON");
    is_subset(&desired, &live)
}

/// Structural subset: objects by key, arrays element by element, scalars by equality.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        // The API server drops empty lists and maps, so a desired empty one matches absence.
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => is_subset(dv, lv),
            None => dv.is_null() || is_empty(dv),
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(dv, lv)| is_subset(dv, lv))
        }
        (d, l) => d == l,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Names of a list of objects, for [`prune`].
pub fn names<'a, K: Resource + 'a>(objects: impl IntoIterator<Item = &'a K>) -> BTreeSet<String> {
    objects.into_iter().map(|o| o.name_any()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_defaults_but_not_drift() {
        let desired = json!({"spec": {"replicas": 2, "ports": [{"port": 443}]}});
        let defaulted = json!({"spec": {"replicas": 2, "revisionHistoryLimit": 10, "ports": [{"port": 443, "protocol": "TCP"}]}});
        assert!(is_subset(&desired, &defaulted));
        let drifted = json!({"spec": {"replicas": 5, "ports": [{"port": 443}]}});
        assert!(!is_subset(&desired, &drifted));
        let extra_item = json!({"spec": {"replicas": 2, "ports": [{"port": 443}, {"port": 80}]}});
        assert!(
            !is_subset(&desired, &extra_item),
            "lists must match in length"
        );
        assert!(
            !is_subset(&json!({"a": 1}), &json!({})),
            "missing field is drift"
        );
    }

    #[test]
    fn hash_changes_with_content() {
        let a = json!({"a": 1});
        let b = json!({"a": 2});
        assert_ne!(config_hash(&a), config_hash(&b));
        assert_eq!(config_hash(&a), config_hash(&json!({"a": 1})));
        assert_eq!(config_hash(&a).len(), 16);
    }
}
