//! One kind of resource as the store tracks it on the Kubernetes API: read from the
//! controller's watch caches unless a cache has not yet seen our own last write (then from the
//! API server), and written through a [`Writer`] — the status as a replace on the status
//! subresource, metadata (labels, finalizers) as merge patches, each guarded by the
//! `resourceVersion` the decision was made from. Deployments and snapshots share these rules;
//! only what differs between them lives in `store.rs` and `store/snapshots.rs`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use engine::{Event, ResourceKey, StoreError};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::events::EventPublisher;
use crate::leader::Fence;

/// How many times a status write is retried on a newer version of an unchanged status.
const CONFLICT_RETRIES: usize = 3;

/// A resource kind the store tracks.
pub(super) trait TrackedKind:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// The kind's status.
    type Status: Clone + Debug + PartialEq + Serialize + Send + Sync;

    /// The object's status, if it has one.
    fn status(&self) -> Option<&Self::Status>;

    /// Whether deleting the object needs the operator, so it gets the finalizer.
    fn wants_finalizer(&self) -> bool {
        false
    }
}

pub(super) fn store_error(message: String, transient: bool) -> StoreError {
    StoreError { message, transient }
}

pub(super) fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

fn kind_of<K: TrackedKind>() -> String {
    K::kind(&()).into_owned()
}

/// A failed API call on the `K` named `key`, retried on the next pass.
pub(super) fn failure<K: TrackedKind>(
    what: &str,
    key: &ResourceKey,
    e: &kube::Error,
) -> StoreError {
    store_error(format!("{what} of {} {key}: {e}", kind_of::<K>()), true)
}

/// What every write needs: the client, the leader's fence, the field manager, the events.
pub(super) struct Writer {
    pub client: Client,
    pub events: EventPublisher,
    pub fence: Fence,
    pub field_manager: String,
}

impl Writer {
    /// Fails while this replica is not the leader.
    pub fn fenced(&self) -> Result<(), StoreError> {
        self.fence
            .check()
            .map_err(|e| store_error(e.to_string(), true))
    }

    pub fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..Default::default()
        }
    }

    pub fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..Default::default()
        }
    }

    pub fn api<K: TrackedKind>(&self, namespace: &str) -> Api<K> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The kind `K` as untyped objects: reads and writes that must not depend on the object
    /// deserialising (a malformed one, a status replace).
    fn dynamic_api<K: TrackedKind>(&self, namespace: &str) -> (Api<DynamicObject>, ApiResource) {
        let resource = ApiResource::erase::<K>(&());
        let api = Api::namespaced_with(self.client.clone(), namespace, &resource);
        (api, resource)
    }
}

/// What the store knows of one object: the version a decision is based on.
#[derive(Clone, Debug)]
pub(super) struct Base<S> {
    pub resource_version: String,
    pub status: Option<S>,
    pub labels: BTreeMap<String, String>,
    pub finalizers: Vec<String>,
    pub wants_finalizer: bool,
    pub reference: ObjectReference,
    /// Set after our own write: the cache must reach this version before it is trusted.
    written: Option<String>,
}

impl<S: Clone> Base<S> {
    fn of<K: TrackedKind<Status = S>>(object: &K) -> Self {
        Base {
            resource_version: object.resource_version().unwrap_or_default(),
            status: object.status().cloned(),
            labels: object.labels().clone(),
            finalizers: object.finalizers().to_vec(),
            wants_finalizer: object.wants_finalizer(),
            reference: object.object_ref(&()),
            written: None,
        }
    }
}

/// The objects of one kind: the watch caches and the bases of the decisions made on them.
pub(super) struct Tracked<K: TrackedKind> {
    caches: Vec<Store<DeserializeGuard<K>>>,
    bases: Mutex<HashMap<ResourceKey, Base<K::Status>>>,
}

impl<K: TrackedKind> Tracked<K> {
    pub fn new(caches: Vec<Store<DeserializeGuard<K>>>) -> Self {
        Tracked {
            caches,
            bases: Mutex::default(),
        }
    }

    pub fn cache_count(&self) -> usize {
        self.caches.len()
    }

    fn bases(&self) -> MutexGuard<'_, HashMap<ResourceKey, Base<K::Status>>> {
        self.bases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The base of the last decision on `key`, if one is known (no API call).
    pub fn known_base(&self, key: &ResourceKey) -> Option<Base<K::Status>> {
        self.bases().get(key).cloned()
    }

    /// Forgets `key` (it is gone, or its deletion is finished).
    pub fn forget(&self, key: &ResourceKey) {
        self.bases().remove(key);
    }

    /// The cached object of `key`, if a cache holds it.
    pub fn cached(&self, key: &ResourceKey) -> Option<Arc<DeserializeGuard<K>>> {
        let oref = ObjectRef::new(&key.name).within(&key.namespace);
        self.caches.iter().find_map(|c| c.get(&oref))
    }

    /// Every cached object that reads as a `K`.
    pub fn all(&self) -> Vec<K> {
        self.caches
            .iter()
            .flat_map(|c| c.state())
            .filter_map(|g| g.0.as_ref().ok().cloned())
            .collect()
    }

    /// Changes whenever a cached object changes (a hash of every cached `resourceVersion`).
    /// The Kubernetes controllers are driven by watches and never poll it.
    pub fn revision(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for cache in &self.caches {
            for obj in cache.state() {
                for b in obj.resource_version().unwrap_or_default().bytes() {
                    hash ^= u64::from(b);
                    hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
        }
        hash
    }

    fn unreadable(key: &ResourceKey, error: &str) -> StoreError {
        store_error(
            format!("{} {key} cannot be read: {error}", kind_of::<K>()),
            false,
        )
    }

    /// Reads `key` from the API server and remembers it as the base of the next decision.
    pub async fn fetch(&self, w: &Writer, key: &ResourceKey) -> Result<Option<K>, StoreError> {
        match w.api::<K>(&key.namespace).get_opt(&key.name).await {
            Ok(Some(object)) => {
                let mut base = Base::of(&object);
                // the cache is trusted again once it holds this version (or a newer one that
                // a later read confirms)
                base.written = object.resource_version();
                self.bases().insert(key.clone(), base);
                Ok(Some(object))
            }
            Ok(None) => {
                self.forget(key);
                Ok(None)
            }
            Err(kube::Error::SerdeError(e)) => Err(Self::unreadable(key, &e.to_string())),
            Err(e) => Err(failure::<K>("reading", key, &e)),
        }
    }

    /// The object `key` for a decision: from the cache when it has seen our last write,
    /// otherwise from the API server; remembered as the decision's base.
    pub async fn get(&self, w: &Writer, key: &ResourceKey) -> Result<Option<K>, StoreError> {
        let written = self.bases().get(key).and_then(|b| b.written.clone());
        let cached = self.cached(key);
        let trusted = match (&cached, &written) {
            (Some(c), Some(w)) => c.resource_version().as_deref() == Some(w.as_str()),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !trusted {
            return self.fetch(w, key).await;
        }
        match cached.as_deref().map(|g| &g.0) {
            Some(Ok(object)) => {
                self.bases().insert(key.clone(), Base::of(object));
                Ok(Some(object.clone()))
            }
            Some(Err(invalid)) => Err(Self::unreadable(key, &invalid.error)),
            None => Ok(None),
        }
    }

    /// The object `key` as the caches hold it (or the API server, when no cache has it),
    /// without touching the bases: for passes that only read it.
    pub async fn peek(&self, w: &Writer, key: &ResourceKey) -> Result<Option<K>, StoreError> {
        if let Some(cached) = self.cached(key) {
            return match &cached.0 {
                Ok(object) => Ok(Some(object.clone())),
                Err(invalid) => Err(Self::unreadable(key, &invalid.error)),
            };
        }
        w.api::<K>(&key.namespace)
            .get_opt(&key.name)
            .await
            .map_err(|e| failure::<K>("reading", key, &e))
    }

    /// The base of the decision for `key`, read from the API server when unknown.
    pub async fn base(&self, w: &Writer, key: &ResourceKey) -> Result<Base<K::Status>, StoreError> {
        if let Some(base) = self.known_base(key) {
            return Ok(base);
        }
        self.fetch(w, key).await?;
        self.known_base(key).ok_or_else(|| {
            store_error(
                format!("{} {key} does not exist any more", kind_of::<K>()),
                true,
            )
        })
    }

    /// Records a successful write that produced `resource_version`.
    fn wrote(
        &self,
        key: &ResourceKey,
        resource_version: Option<String>,
        update: impl FnOnce(&mut Base<K::Status>),
    ) {
        if let Some(base) = self.bases().get_mut(key) {
            if let Some(rv) = resource_version {
                base.resource_version = rv.clone();
                base.written = Some(rv);
            }
            update(base);
        }
    }

    /// Replaces the status of `key`, guarded by the base's version. On `409 Conflict` the
    /// object is read again: if its status is still the one the decision was based on
    /// (someone changed the spec or metadata), the write is retried on the new version; if
    /// the status changed (another writer), the write fails and the next pass decides again.
    pub async fn write_status(
        &self,
        w: &Writer,
        key: &ResourceKey,
        status: &K::Status,
    ) -> Result<(), StoreError> {
        let kind = kind_of::<K>();
        let (api, resource) = w.dynamic_api::<K>(&key.namespace);
        let status_value = serde_json::to_value(status).map_err(|e| {
            store_error(
                format!("cannot write the status of {kind} {key}: {e}"),
                false,
            )
        })?;
        for _ in 0..CONFLICT_RETRIES {
            let base = self.base(w, key).await?;
            let mut body = DynamicObject::new(&key.name, &resource).within(&key.namespace);
            body.metadata.resource_version = Some(base.resource_version.clone());
            body.data = json!({"status": status_value});
            w.fenced()?;
            match api.replace_status(&key.name, &w.post_params(), &body).await {
                Ok(written) => {
                    let rv = written.metadata.resource_version.clone();
                    self.wrote(key, rv, |b| b.status = Some(status.clone()));
                    return Ok(());
                }
                Err(e) if is_code(&e, 409) => {
                    let current = self
                        .fetch(w, key)
                        .await?
                        .ok_or_else(|| store_error(format!("{kind} {key} was deleted"), true))?;
                    if current.status() != base.status.as_ref() {
                        // Another writer changed the status: this decision is void.
                        return Err(store_error(
                            format!(
                                "the status of {kind} {key} was changed by another writer; \
                                 the next pass decides again from it"
                            ),
                            true,
                        ));
                    }
                    tracing::debug!(resource = %key, "status write conflicted with a spec or metadata change; retrying on the new version");
                }
                Err(e) => return Err(failure::<K>("writing the status", key, &e)),
            }
        }
        Err(store_error(
            format!("{kind} {key} keeps changing; its status is written on the next pass"),
            true,
        ))
    }

    /// A merge patch of the metadata of `key`, guarded by the base's version; re-reads and
    /// retries once on a conflict. `change` returns the metadata patch, `None` for nothing to
    /// do. A missing object counts as done.
    pub async fn patch_metadata(
        &self,
        w: &Writer,
        key: &ResourceKey,
        what: &str,
        change: impl Fn(&Base<K::Status>) -> Option<Value>,
    ) -> Result<(), StoreError> {
        for attempt in 0..2 {
            let base = self.base(w, key).await?;
            let Some(mut metadata) = change(&base) else {
                return Ok(());
            };
            metadata["resourceVersion"] = json!(base.resource_version);
            w.fenced()?;
            let patch = json!({ "metadata": metadata });
            match w
                .api::<K>(&key.namespace)
                .patch(&key.name, &w.patch_params(), &Patch::Merge(&patch))
                .await
            {
                Ok(object) => {
                    self.wrote(key, object.resource_version(), |b| {
                        b.labels = object.labels().clone();
                        b.finalizers = object.finalizers().to_vec();
                    });
                    return Ok(());
                }
                Err(e) if is_code(&e, 404) => {
                    self.forget(key);
                    return Ok(());
                }
                Err(e) if is_code(&e, 409) && attempt == 0 => {
                    self.fetch(w, key).await?;
                }
                Err(e) => return Err(failure::<K>(what, key, &e)),
            }
        }
        Err(store_error(
            format!(
                "{} {key} keeps changing; {what} is retried on the next pass",
                kind_of::<K>()
            ),
            true,
        ))
    }

    /// Adds the finalizer `name` to `key` unless it has it.
    pub async fn add_finalizer(
        &self,
        w: &Writer,
        key: &ResourceKey,
        name: &str,
    ) -> Result<(), StoreError> {
        self.patch_metadata(w, key, "writing the finalizers", |base| {
            (!base.finalizers.iter().any(|f| f == name)).then(|| {
                let mut next = base.finalizers.clone();
                next.push(name.to_string());
                json!({ "finalizers": next })
            })
        })
        .await
    }

    /// Removes the finalizer `name` from `key` and forgets it: the object may go now.
    pub async fn remove_finalizer(
        &self,
        w: &Writer,
        key: &ResourceKey,
        name: &str,
    ) -> Result<(), StoreError> {
        self.patch_metadata(w, key, "writing the finalizers", |base| {
            base.finalizers.iter().any(|f| f == name).then(|| {
                let next: Vec<&String> = base.finalizers.iter().filter(|f| *f != name).collect();
                json!({ "finalizers": next })
            })
        })
        .await?;
        self.forget(key);
        Ok(())
    }

    /// Publishes `events` on the object `key`.
    pub async fn record_events(
        &self,
        w: &Writer,
        key: &ResourceKey,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let reference = self.base(w, key).await?.reference;
        w.events
            .publish(&reference, events)
            .await
            .map_err(|e| store_error(format!("{} {key}: {e}", kind_of::<K>()), true))
    }

    /// Why the stored `key` does not read as a `K`, naming the field (the watch's own error
    /// does not say where); `None` when it cannot be read again or reads fine now.
    async fn unreadable_field(&self, w: &Writer, key: &ResourceKey) -> Option<String> {
        let (api, _) = w.dynamic_api::<K>(&key.namespace);
        let object = api.get_opt(&key.name).await.ok()??;
        let value = serde_json::to_value(object).ok()?;
        match serde_path_to_error::deserialize::<_, K>(value) {
            Ok(_) => None,
            Err(e) => Some(format!("{}: {}", e.path(), e.inner())),
        }
    }

    /// Reports an object that cannot be read as a `K`: a `ValidationError` event with
    /// `message(why)` and the status fields `status(message)` (best effort; nothing else is
    /// done with it).
    pub async fn report_unreadable(
        &self,
        w: &Writer,
        key: &ResourceKey,
        reference: &ObjectReference,
        error: &str,
        message: impl FnOnce(&str) -> String,
        status: impl FnOnce(&str) -> Value,
    ) -> Result<(), StoreError> {
        let why = self
            .unreadable_field(w, key)
            .await
            .unwrap_or_else(|| error.to_string());
        let message = message(&why);
        let event = Event::warning(engine::EventReason::ValidationError, message.clone());
        if let Err(e) = w.events.publish(reference, &[event]).await {
            tracing::warn!(resource = %key, error = %e, "could not record an event");
        }
        w.fenced()?;
        let (api, _) = w.dynamic_api::<K>(&key.namespace);
        let patch = json!({ "status": status(&message) });
        api.patch_status(&key.name, &w.patch_params(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| failure::<K>("writing the status", key, &e))
    }
}
