//! What the controller's watches last saw of the objects tenants own, so a reconcile
//! reads its children from memory instead of sending a GET per child.
//!
//! The watches that trigger reconciles fill these stores (a reflector in front of each
//! trigger stream), so by the time a change wakes a reconcile the store already holds
//! it. A store can trail the API server by the watch's latency: a reconcile that finds a
//! child missing or different applies it (server-side apply makes that safe), and the
//! watch event of any change made behind its back triggers another reconcile.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use kube::Resource;
use kube::core::{Expression, Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};

/// The stores of every watched child kind.
#[derive(Clone, Default)]
pub struct Caches {
    stores: Arc<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    ready: Vec<Arc<dyn Readiness>>,
}

trait Readiness: Send + Sync {
    fn wait(&self) -> futures::future::BoxFuture<'_, ()>;
}

impl<K> Readiness for Store<K>
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Send + Sync,
{
    fn wait(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            // Only fails when the writer is gone, which ends the controller anyway.
            let _ = self.wait_until_ready().await;
        })
    }
}

impl Caches {
    /// Adds the store of kind `K`.
    pub fn insert<K>(&mut self, store: Store<K>)
    where
        K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        self.ready.push(Arc::new(store.clone()));
        Arc::get_mut(&mut self.stores)
            .expect("caches are filled before they are shared")
            .insert(TypeId::of::<K>(), Box::new(store));
    }

    /// The store of kind `K`, when that kind is watched.
    pub fn store<K>(&self) -> Option<&Store<K>>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        self.stores.get(&TypeId::of::<K>())?.downcast_ref()
    }

    /// Waits until every store has its first full list (at start, a reconcile that read
    /// an empty store would re-apply every child of every tenant).
    pub async fn wait_ready(&self) {
        for store in &self.ready {
            store.wait().await;
        }
    }

    /// The cached `name` (in `namespace`) of kind `K`: `None` when `K` is not watched,
    /// `Some(None)` when the watch has not seen such an object.
    pub fn get<K>(&self, name: &str, namespace: Option<&str>) -> Option<Option<K>>
    where
        K: Resource<DynamicType = ()> + Clone + Debug + 'static,
    {
        let store = self.store::<K>()?;
        let mut key = ObjectRef::<K>::new(name);
        if let Some(ns) = namespace {
            key = key.within(ns);
        }
        Some(store.get(&key).map(|k| (*k).clone()))
    }

    /// The cached objects of kind `K` in `namespace` matching `selector` (`key=value`
    /// pairs, comma-separated); `None` when `K` is not watched.
    pub fn matching<K>(&self, namespace: &str, selector: &str) -> Option<Vec<K>>
    where
        K: Resource<DynamicType = ()> + Clone + Debug + 'static,
    {
        let store = self.store::<K>()?;
        let selector = equality_selector(selector);
        Some(
            store
                .state_filter(|k| {
                    k.meta().namespace.as_deref() == Some(namespace)
                        && selector.matches(k.meta().labels.as_ref().unwrap_or(&Default::default()))
                })
                .into_iter()
                .map(|k| (*k).clone())
                .collect(),
        )
    }
}

/// A selector of `key=value` pairs, the only kind this operator writes.
pub fn equality_selector(selector: &str) -> Selector {
    selector
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| Expression::Equal(k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn equality_selectors_match_every_pair() {
        let s = equality_selector("app.kubernetes.io/managed-by=sanctum,sanctum.dev/tenant=a");
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(s.matches(&labels(&[
            ("app.kubernetes.io/managed-by", "sanctum"),
            ("sanctum.dev/tenant", "a"),
            ("other", "x"),
        ])));
        assert!(!s.matches(&labels(&[
            ("app.kubernetes.io/managed-by", "sanctum"),
            ("sanctum.dev/tenant", "b"),
        ])));
        assert!(!s.matches(&labels(&[("sanctum.dev/tenant", "a")])));
    }
}
