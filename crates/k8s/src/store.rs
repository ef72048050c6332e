//! [`K8sStore`]: the engine's store on the Kubernetes API — resources read from the
//! controller's watch caches, status written to the status subresource, events through one
//! recorder, the finalizer patched in and out. `FlinkStateSnapshot`s (the engine's
//! `SnapshotStore`, and a deployment's snapshots) follow the same rules (`store/snapshots.rs`).
//!
//! **Optimistic concurrency.** A status write carries the `resourceVersion` of the object the
//! decision was made from (or of our own previous write). On `409 Conflict` the object is read
//! again: if its status is still the one the decision was based on (someone changed the spec or
//! labels), the write is retried on the new version; if the status changed (another writer), the
//! write fails, nothing after it runs (the engine acts only on persisted status), and the next
//! pass decides again from what is stored.
//!
//! **Reading your own writes.** The watch cache may not have seen our last write yet. The
//! store remembers the `resourceVersion` it wrote last per resource; while the cache holds
//! another version, `get` reads the object from the API server instead.
//!
//! **Finalizer.** On Kubernetes, owner references make the garbage collector delete every
//! child with its `FlinkDeployment`, so the finalizer is only added when deletion needs the
//! operator (see [`needs_finalizer`]); the engine asks for it before its first action.

mod snapshots;

use std::collections::HashMap;
use std::sync::Mutex;

use api::{FlinkDeployment, FlinkDeploymentStatus};
use engine::{Event, FINALIZER, ResourceKey, ResourceStore, StatusStore, StoreError};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::events::EventPublisher;
use crate::leader::Fence;

pub use snapshots::GuardedSnapshot;

/// A `FlinkDeployment` as the watch caches hold it: read, or kept with why it could not be.
pub type Guarded = DeserializeGuard<FlinkDeployment>;

/// Operator option: stop the job with a savepoint before deleting it (Apache).
pub const SAVEPOINT_ON_DELETION: &str = "kubernetes.operator.job.savepoint-on-deletion";

/// How many times a status write is retried on a newer version of an unchanged status.
const CONFLICT_RETRIES: usize = 3;

/// Whether deleting `d` needs the operator before the object may go, so it gets the
/// finalizer:
/// - `kubernetes.operator.job.savepoint-on-deletion: true` — the job is stopped with a
///   savepoint first;
/// - high availability — Flink keeps its HA ConfigMaps after its JobManager is gone (they are
///   owned by nothing), and the operator deletes them with the cluster;
///
/// Anything else is deleted by the garbage collector through owner references.
pub fn needs_finalizer(d: &FlinkDeployment) -> bool {
    let config = d.spec.flink_config();
    let flag = config
        .get_bool(SAVEPOINT_ON_DELETION)
        .ok()
        .flatten()
        .unwrap_or(false);
    let ha = ["high-availability.type", "high-availability"]
        .iter()
        .find_map(|k| config.get(k))
        .is_some_and(|v| !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("none"));
    flag || ha
}

/// What the store knows of one resource: the version a decision is based on.
#[derive(Clone, Debug)]
struct Base {
    resource_version: String,
    status: Option<FlinkDeploymentStatus>,
    finalizers: Vec<String>,
    wants_finalizer: bool,
    reference: ObjectReference,
    /// Set after our own write: the cache must reach this version before it is trusted.
    written: Option<String>,
}

impl Base {
    fn of(d: &FlinkDeployment) -> Self {
        Base {
            resource_version: d.resource_version().unwrap_or_default(),
            status: d.status.clone(),
            finalizers: d.finalizers().to_vec(),
            wants_finalizer: needs_finalizer(d),
            reference: d.object_ref(&()),
            written: None,
        }
    }
}

/// The engine's store on the Kubernetes API (see the module docs).
pub struct K8sStore {
    client: Client,
    caches: Vec<Store<Guarded>>,
    events: EventPublisher,
    fence: Fence,
    field_manager: String,
    bases: Mutex<HashMap<ResourceKey, Base>>,
    snapshot_caches: Vec<Store<GuardedSnapshot>>,
    snapshot_bases: Mutex<HashMap<ResourceKey, snapshots::SnapshotBase>>,
}

impl std::fmt::Debug for K8sStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K8sStore")
            .field("caches", &self.caches.len())
            .finish_non_exhaustive()
    }
}

fn store_error(message: String, transient: bool) -> StoreError {
    StoreError { message, transient }
}

fn api_failure(what: &str, key: &ResourceKey, e: &kube::Error) -> StoreError {
    store_error(format!("{what} of FlinkDeployment {key}: {e}"), true)
}

fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

impl K8sStore {
    /// A store reading from the controller's `caches` (one per watched namespace, or one for
    /// all) and writing through `client` while `fence` is open.
    pub fn new(
        client: Client,
        caches: Vec<Store<Guarded>>,
        events: EventPublisher,
        fence: Fence,
        field_manager: &str,
    ) -> Self {
        K8sStore {
            client,
            caches,
            events,
            fence,
            field_manager: field_manager.to_string(),
            bases: Mutex::default(),
            snapshot_caches: Vec::new(),
            snapshot_bases: Mutex::default(),
        }
    }

    /// Reads `FlinkStateSnapshot`s from the snapshot controller's `caches`: a deployment's
    /// pass sees its snapshot resources, and the snapshot controller's passes run on this
    /// store. Without them a deployment sees no snapshot resources.
    pub fn with_snapshot_caches(mut self, caches: Vec<Store<GuardedSnapshot>>) -> Self {
        self.snapshot_caches = caches;
        self
    }

    fn bases(&self) -> std::sync::MutexGuard<'_, HashMap<ResourceKey, Base>> {
        self.bases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn api(&self, key: &ResourceKey) -> Api<FlinkDeployment> {
        Api::namespaced(self.client.clone(), &key.namespace)
    }

    fn fenced(&self) -> Result<(), StoreError> {
        self.fence
            .check()
            .map_err(|e| store_error(e.to_string(), true))
    }

    /// The cached object of `key`, if a cache holds it.
    pub fn cached(&self, key: &ResourceKey) -> Option<std::sync::Arc<Guarded>> {
        let oref = ObjectRef::new(&key.name).within(&key.namespace);
        self.caches.iter().find_map(|c| c.get(&oref))
    }

    /// Reads `key` from the API server and remembers it as the base of the next decision.
    async fn fetch(&self, key: &ResourceKey) -> Result<Option<FlinkDeployment>, StoreError> {
        match self.api(key).get_opt(&key.name).await {
            Ok(Some(d)) => {
                let mut base = Base::of(&d);
                // the cache is trusted again once it holds this version (or a newer one that
                // a later read confirms)
                base.written = d.resource_version();
                self.bases().insert(key.clone(), base);
                Ok(Some(d))
            }
            Ok(None) => {
                self.bases().remove(key);
                Ok(None)
            }
            Err(kube::Error::SerdeError(e)) => Err(store_error(
                format!("FlinkDeployment {key} cannot be read: {e}"),
                false,
            )),
            Err(e) => Err(api_failure("reading", key, &e)),
        }
    }

    /// The base of the decision for `key`, read from the API server when unknown.
    async fn base(&self, key: &ResourceKey) -> Result<Base, StoreError> {
        if let Some(base) = self.bases().get(key).cloned() {
            return Ok(base);
        }
        self.fetch(key).await?;
        self.bases().get(key).cloned().ok_or_else(|| {
            store_error(
                format!("FlinkDeployment {key} does not exist any more"),
                true,
            )
        })
    }

    /// Records a successful write that produced `resource_version`.
    fn wrote(
        &self,
        key: &ResourceKey,
        resource_version: Option<String>,
        update: impl FnOnce(&mut Base),
    ) {
        if let Some(base) = self.bases().get_mut(key) {
            if let Some(rv) = resource_version {
                base.resource_version = rv.clone();
                base.written = Some(rv);
            }
            update(base);
        }
    }

    /// Whether `key` has no deployed spec yet and its status holds an error: an invalid new
    /// resource, which waits for its spec to change.
    pub fn failed_before_first_deployment(&self, key: &ResourceKey) -> bool {
        self.bases().get(key).is_some_and(|b| {
            b.status.as_ref().is_some_and(|s| {
                s.error.is_some()
                    && s.reconciliation_status
                        .as_ref()
                        .is_none_or(|r| r.is_before_first_deployment())
            })
        })
    }

    /// Adds the finalizer to `d` when deleting it needs the operator and it has none (the
    /// engine only asks before an action; an option switched on later is honoured here).
    pub async fn ensure_finalizer(&self, d: &FlinkDeployment) -> Result<(), StoreError> {
        let deployed = d
            .status
            .as_ref()
            .and_then(|s| s.reconciliation_status.as_ref())
            .is_some_and(|r| !r.is_before_first_deployment());
        if d.metadata.deletion_timestamp.is_none()
            && deployed
            && needs_finalizer(d)
            && !d.finalizers().iter().any(|f| f == FINALIZER)
        {
            self.add_finalizer(&engine::decide::resource_key(d)).await?;
        }
        Ok(())
    }

    /// Why the stored `key` does not read as a `FlinkDeployment`, naming the field (the watch's
    /// own error does not say where); `None` when it cannot be read again or reads fine now.
    async fn unreadable_field(&self, key: &ResourceKey) -> Option<String> {
        let resource = ApiResource::erase::<FlinkDeployment>(&());
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &key.namespace, &resource);
        let object = api.get_opt(&key.name).await.ok()??;
        let value = serde_json::to_value(object).ok()?;
        match serde_path_to_error::deserialize::<_, FlinkDeployment>(value) {
            Ok(_) => None,
            Err(e) => Some(format!("{}: {}", e.path(), e.inner())),
        }
    }

    /// Reports an object that cannot be read as a `FlinkDeployment`: a `ValidationError`
    /// event and `status.error` (best effort; nothing else is done with it).
    pub async fn report_unreadable(
        &self,
        key: &ResourceKey,
        reference: &ObjectReference,
        error: &str,
    ) -> Result<(), StoreError> {
        let error = self
            .unreadable_field(key)
            .await
            .unwrap_or_else(|| error.to_string());
        let message =
            format!("Invalid spec, nothing was changed: the object cannot be read: {error}");
        let event = Event::warning(engine::EventReason::ValidationError, message.clone());
        if let Err(e) = self.events.publish(reference, &[event]).await {
            tracing::warn!(resource = %key, error = %e, "could not record an event");
        }
        self.fenced()?;
        let resource = ApiResource::erase::<FlinkDeployment>(&());
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &key.namespace, &resource);
        let patch = json!({"status": {"error": message, "lifecycleState": "FAILED"}});
        api.patch_status(&key.name, &self.patch_params(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| api_failure("writing the status", key, &e))
    }

    fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..Default::default()
        }
    }

    /// Sets `metadata.finalizers` to `finalizers`, guarded by the base's version; re-reads and
    /// retries once on a conflict.
    async fn set_finalizers(
        &self,
        key: &ResourceKey,
        change: impl Fn(&[String]) -> Option<Vec<String>>,
    ) -> Result<(), StoreError> {
        for attempt in 0..2 {
            let base = self.base(key).await?;
            let Some(finalizers) = change(&base.finalizers) else {
                return Ok(());
            };
            self.fenced()?;
            let patch = json!({"metadata": {
                "finalizers": finalizers,
                "resourceVersion": base.resource_version,
            }});
            match self
                .api(key)
                .patch(&key.name, &self.patch_params(), &Patch::Merge(&patch))
                .await
            {
                Ok(d) => {
                    let rv = d.resource_version();
                    self.wrote(key, rv, |b| b.finalizers = d.finalizers().to_vec());
                    return Ok(());
                }
                Err(e) if is_code(&e, 404) => {
                    self.bases().remove(key);
                    return Ok(());
                }
                Err(e) if is_code(&e, 409) && attempt == 0 => {
                    self.fetch(key).await?;
                }
                Err(e) => return Err(api_failure("writing the finalizers", key, &e)),
            }
        }
        Err(store_error(
            format!(
                "the finalizers of FlinkDeployment {key} keep changing; retried on the next pass"
            ),
            true,
        ))
    }
}

impl StatusStore for K8sStore {
    async fn write_status(
        &self,
        key: &ResourceKey,
        status: &FlinkDeploymentStatus,
    ) -> Result<(), StoreError> {
        let resource = ApiResource::erase::<FlinkDeployment>(&());
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &key.namespace, &resource);
        let status_value = serde_json::to_value(status)
            .map_err(|e| store_error(format!("cannot write the status of {key}: {e}"), false))?;
        for _ in 0..CONFLICT_RETRIES {
            let base = self.base(key).await?;
            let mut body = DynamicObject::new(&key.name, &resource).within(&key.namespace);
            body.metadata.resource_version = Some(base.resource_version.clone());
            body.data = json!({"status": status_value});
            self.fenced()?;
            let params = PostParams {
                field_manager: Some(self.field_manager.clone()),
                ..Default::default()
            };
            match api.replace_status(&key.name, &params, &body).await {
                Ok(written) => {
                    let rv = written.metadata.resource_version.clone();
                    self.wrote(key, rv, |b| b.status = Some(status.clone()));
                    return Ok(());
                }
                Err(e) if is_code(&e, 409) => {
                    let current = self.fetch(key).await?.ok_or_else(|| {
                        store_error(format!("FlinkDeployment {key} was deleted"), true)
                    })?;
                    if current.status != base.status {
                        // Another writer changed the status: this decision is void.
                        return Err(store_error(
                            format!(
                                "the status of FlinkDeployment {key} was changed by another \
                                 writer; the next pass decides again from it"
                            ),
                            true,
                        ));
                    }
                    tracing::debug!(resource = %key, "status write conflicted with a spec or metadata change; retrying on the new version");
                }
                Err(e) => return Err(api_failure("writing the status", key, &e)),
            }
        }
        Err(store_error(
            format!("FlinkDeployment {key} keeps changing; its status is written on the next pass"),
            true,
        ))
    }

    async fn record_events(&self, key: &ResourceKey, events: &[Event]) -> Result<(), StoreError> {
        let reference = self.base(key).await?.reference;
        self.events
            .publish(&reference, events)
            .await
            .map_err(|e| store_error(format!("FlinkDeployment {key}: {e}"), true))
    }

    async fn add_finalizer(&self, key: &ResourceKey) -> Result<(), StoreError> {
        if !self.base(key).await?.wants_finalizer {
            return Ok(());
        }
        self.set_finalizers(key, |current| {
            (!current.iter().any(|f| f == FINALIZER)).then(|| {
                let mut next = current.to_vec();
                next.push(FINALIZER.to_string());
                next
            })
        })
        .await
    }

    async fn finish_deletion(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.set_finalizers(key, |current| {
            current.iter().any(|f| f == FINALIZER).then(|| {
                current
                    .iter()
                    .filter(|f| *f != FINALIZER)
                    .cloned()
                    .collect()
            })
        })
        .await?;
        self.bases().remove(key);
        Ok(())
    }

    async fn create_snapshot(&self, snapshot: &api::FlinkStateSnapshot) -> Result<(), StoreError> {
        self.create_snapshot_resource(snapshot).await
    }

    async fn delete_snapshot(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.delete_snapshot_resource(key).await
    }
}

impl ResourceStore for K8sStore {
    /// Changes whenever a cached object changes (a hash of every cached `resourceVersion`).
    /// The Kubernetes controller is driven by watches and never polls it.
    async fn revision(&self) -> Result<u64, StoreError> {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for cache in &self.caches {
            for obj in cache.state() {
                for b in obj.resource_version().unwrap_or_default().bytes() {
                    hash ^= u64::from(b);
                    hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
        }
        Ok(hash)
    }

    async fn list(&self) -> Result<Vec<FlinkDeployment>, StoreError> {
        Ok(self
            .caches
            .iter()
            .flat_map(|c| c.state())
            .filter_map(|g| g.0.as_ref().ok().cloned())
            .collect())
    }

    async fn get(&self, key: &ResourceKey) -> Result<Option<FlinkDeployment>, StoreError> {
        let written = self.bases().get(key).and_then(|b| b.written.clone());
        let cached = self.cached(key);
        let trusted = match (&cached, &written) {
            (Some(c), Some(w)) => c.resource_version().as_deref() == Some(w.as_str()),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !trusted {
            return self.fetch(key).await;
        }
        match cached.as_deref().map(|g| &g.0) {
            Some(Ok(d)) => {
                self.bases().insert(key.clone(), Base::of(d));
                Ok(Some(d.clone()))
            }
            Some(Err(invalid)) => Err(store_error(
                format!("FlinkDeployment {key} cannot be read: {}", invalid.error),
                false,
            )),
            None => Ok(None),
        }
    }

    async fn snapshots_of(
        &self,
        key: &ResourceKey,
    ) -> Result<Vec<api::FlinkStateSnapshot>, StoreError> {
        Ok(self.snapshots_referring_to(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_deletions_that_need_the_operator_get_the_finalizer() {
        let app = FlinkDeployment::test("a").application();
        assert!(!needs_finalizer(&app), "children go with their owner");
        assert!(needs_finalizer(
            &app.clone().with_config(SAVEPOINT_ON_DELETION, "true")
        ));
        assert!(!needs_finalizer(
            &app.clone().with_config(SAVEPOINT_ON_DELETION, "false")
        ));
        assert!(needs_finalizer(
            &app.clone()
                .with_config("high-availability.type", "kubernetes")
        ));
        assert!(!needs_finalizer(
            &app.clone().with_config("high-availability.type", "NONE")
        ));
        assert!(
            !needs_finalizer(&FlinkDeployment::test("session")),
            "a session cluster goes with its owner too (no FlinkSessionJob guard yet)"
        );
    }
}
