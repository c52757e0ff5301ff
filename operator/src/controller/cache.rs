//! What the controller's watches last saw of the objects tenants own, so a reconcile
//! reads its children from memory instead of sending a GET per child.
//!
//! The watches that trigger reconciles fill these stores (a reflector in front of each
//! trigger stream), so by the time a change wakes a reconcile the store already holds
//! it. A store can trail the API server by the watch's latency: a reconcile that finds a
//! child missing or different applies it (server-side apply makes that safe), and the
//! watch event of any change made behind its back triggers another reconcile. A store
//! whose watch has not listed yet is not read: the API server answers instead.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::Resource;
use kube::core::{Expression, Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};

/// The stores of every watched child kind.
#[derive(Clone, Default)]
pub struct Caches {
    stores: Arc<HashMap<TypeId, Cached>>,
}

struct Cached {
    store: Box<dyn Any + Send + Sync>,
    /// Set once the watch has delivered its first full list; until then (at start, or
    /// while a watch cannot list) the store is not read and the API server answers.
    ready: Arc<AtomicBool>,
}

impl Caches {
    /// Adds the store of kind `K`; must run inside the Tokio runtime.
    pub fn insert<K>(&mut self, store: Store<K>)
    where
        K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        let ready = Arc::new(AtomicBool::new(false));
        let (flag, waiting) = (ready.clone(), store.clone());
        tokio::spawn(async move {
            // Fails only when the writer is gone, and then the store stays unread.
            if waiting.wait_until_ready().await.is_ok() {
                flag.store(true, Ordering::Release);
            }
        });
        Arc::get_mut(&mut self.stores)
            .expect("caches are filled before they are shared")
            .insert(
                TypeId::of::<K>(),
                Cached {
                    store: Box::new(store),
                    ready,
                },
            );
    }

    /// The store of kind `K`, when that kind is watched and its first list is in.
    fn store<K>(&self) -> Option<&Store<K>>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let cached = self.stores.get(&TypeId::of::<K>())?;
        if !cached.ready.load(Ordering::Acquire) {
            return None;
        }
        cached.store.downcast_ref()
    }

    /// The cached `name` (in `namespace`) of kind `K`: `None` when `K` is not watched or
    /// its watch has not listed yet, `Some(None)` when the watch has not seen such an object.
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
    /// pairs, comma-separated); `None` when `K` is not watched or has not listed yet.
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
