//! What the controllers of one term share about the objects they watch: the namespaces, the
//! API of a kind in one of them, an object's key, and how a watch of one kind wakes the
//! objects of another kind that refer to it.

use engine::ResourceKey;
use kube::core::{DeserializeGuard, NamespaceResourceScope};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};

use super::ControllerSettings;

/// The namespaces watched: each configured one, or all (`None`) when none is.
pub(super) fn namespaces(settings: &ControllerSettings) -> Vec<Option<String>> {
    if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings.namespaces.iter().cloned().map(Some).collect()
    }
}

/// The API of kind `K` in `namespace`, or in all namespaces.
pub(super) fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The store key of a watched object.
pub(super) fn key_of<K: Resource>(obj: &K) -> ResourceKey {
    ResourceKey::new(
        obj.namespace().unwrap_or_else(|| "default".into()),
        obj.name_any(),
    )
}

/// The objects in `cache` that read and for which `refers` holds: the ones to wake when the
/// object they refer to changed. Objects that do not read refer to nothing.
pub(super) fn referring<T>(
    cache: &Store<DeserializeGuard<T>>,
    refers: impl Fn(&T) -> bool,
) -> Vec<ObjectRef<DeserializeGuard<T>>>
where
    T: Resource<DynamicType = ()> + Clone,
{
    cache
        .state()
        .into_iter()
        .filter(|o| o.0.as_ref().is_ok_and(&refers))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}
