//! `FlinkStateSnapshot`s on the Kubernetes API: the engine's [`SnapshotStore`] on [`K8sStore`],
//! and the snapshot operations a deployment's pass needs (its snapshots, create, delete).
//!
//! The same rules as the deployments' store: reads from the snapshot controller's watch caches
//! unless the cache has not yet seen our own last write (then from the API server); the status
//! goes to the status subresource as a replace guarded by the `resourceVersion` the decision
//! was made from, re-read on `409` and retried only while the stored status is unchanged;
//! labels and the finalizer are merge patches guarded by the version too. Every write checks
//! the fence first.

use std::collections::BTreeMap;

use api::{FlinkDeployment, FlinkStateSnapshot, FlinkStateSnapshotStatus};
use engine::snapshot::{SNAPSHOT_FINALIZER, SnapshotStore, refers_to};
use engine::{Event, ResourceKey, StoreError};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PostParams};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

use super::{CONFLICT_RETRIES, K8sStore, is_code, store_error};

/// A `FlinkStateSnapshot` as the watch caches hold it: read, or kept with why it could not be.
pub type GuardedSnapshot = DeserializeGuard<FlinkStateSnapshot>;

/// What the store knows of one snapshot: the version a decision is based on.
#[derive(Clone, Debug)]
pub(super) struct SnapshotBase {
    resource_version: String,
    status: Option<FlinkStateSnapshotStatus>,
    labels: BTreeMap<String, String>,
    finalizers: Vec<String>,
    reference: ObjectReference,
    /// Set after our own write: the cache must reach this version before it is trusted.
    written: Option<String>,
}

impl SnapshotBase {
    fn of(s: &FlinkStateSnapshot) -> Self {
        SnapshotBase {
            resource_version: s.resource_version().unwrap_or_default(),
            status: s.status.clone(),
            labels: s.labels().clone(),
            finalizers: s.finalizers().to_vec(),
            reference: s.object_ref(&()),
            written: None,
        }
    }
}

/// The metadata merge patch that turns the labels `current` into `wanted` (all of them), or
/// `None` when they are the same. A merge patch removes a label by setting it to null.
fn labels_patch(
    current: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Option<Value> {
    if current == wanted {
        return None;
    }
    let mut patch: serde_json::Map<String, Value> = current
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .map(|k| (k.clone(), Value::Null))
        .collect();
    for (k, v) in wanted {
        patch.insert(k.clone(), json!(v));
    }
    Some(json!({ "labels": patch }))
}

fn failure(what: &str, key: &ResourceKey, e: &kube::Error) -> StoreError {
    store_error(format!("{what} of FlinkStateSnapshot {key}: {e}"), true)
}

impl K8sStore {
    fn snapshot_api(&self, namespace: &str) -> Api<FlinkStateSnapshot> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn snapshot_bases(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<ResourceKey, SnapshotBase>> {
        self.snapshot_bases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached snapshot of `key`, if a snapshot cache holds it.
    pub fn cached_snapshot(&self, key: &ResourceKey) -> Option<std::sync::Arc<GuardedSnapshot>> {
        let oref = ObjectRef::new(&key.name).within(&key.namespace);
        self.snapshot_caches.iter().find_map(|c| c.get(&oref))
    }

    /// Every cached snapshot that reads as one.
    fn cached_snapshots(&self) -> Vec<FlinkStateSnapshot> {
        self.snapshot_caches
            .iter()
            .flat_map(|c| c.state())
            .filter_map(|g| g.0.as_ref().ok().cloned())
            .collect()
    }

    /// Reads the snapshot `key` from the API server and remembers it as the next base.
    async fn fetch_snapshot(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<FlinkStateSnapshot>, StoreError> {
        match self.snapshot_api(&key.namespace).get_opt(&key.name).await {
            Ok(Some(s)) => {
                let mut base = SnapshotBase::of(&s);
                base.written = s.resource_version();
                self.snapshot_bases().insert(key.clone(), base);
                Ok(Some(s))
            }
            Ok(None) => {
                self.snapshot_bases().remove(key);
                Ok(None)
            }
            Err(kube::Error::SerdeError(e)) => Err(store_error(
                format!("FlinkStateSnapshot {key} cannot be read: {e}"),
                false,
            )),
            Err(e) => Err(failure("reading", key, &e)),
        }
    }

    async fn snapshot_base(&self, key: &ResourceKey) -> Result<SnapshotBase, StoreError> {
        if let Some(base) = self.snapshot_bases().get(key).cloned() {
            return Ok(base);
        }
        self.fetch_snapshot(key).await?;
        self.snapshot_bases().get(key).cloned().ok_or_else(|| {
            store_error(
                format!("FlinkStateSnapshot {key} does not exist any more"),
                true,
            )
        })
    }

    fn wrote_snapshot(
        &self,
        key: &ResourceKey,
        resource_version: Option<String>,
        update: impl FnOnce(&mut SnapshotBase),
    ) {
        if let Some(base) = self.snapshot_bases().get_mut(key) {
            if let Some(rv) = resource_version {
                base.resource_version = rv.clone();
                base.written = Some(rv);
            }
            update(base);
        }
    }

    /// A merge patch of the snapshot's metadata, guarded by the base's version; re-reads and
    /// retries once on a conflict. `change` returns the metadata patch, `None` for nothing to
    /// do.
    async fn patch_snapshot_metadata(
        &self,
        key: &ResourceKey,
        what: &str,
        change: impl Fn(&SnapshotBase) -> Option<Value>,
    ) -> Result<(), StoreError> {
        for attempt in 0..2 {
            let base = self.snapshot_base(key).await?;
            let Some(mut metadata) = change(&base) else {
                return Ok(());
            };
            metadata["resourceVersion"] = json!(base.resource_version);
            self.fenced()?;
            let patch = json!({ "metadata": metadata });
            match self
                .snapshot_api(&key.namespace)
                .patch(&key.name, &self.patch_params(), &Patch::Merge(&patch))
                .await
            {
                Ok(s) => {
                    self.wrote_snapshot(key, s.resource_version(), |b| {
                        b.labels = s.labels().clone();
                        b.finalizers = s.finalizers().to_vec();
                    });
                    return Ok(());
                }
                Err(e) if is_code(&e, 404) => {
                    self.snapshot_bases().remove(key);
                    return Ok(());
                }
                Err(e) if is_code(&e, 409) && attempt == 0 => {
                    self.fetch_snapshot(key).await?;
                }
                Err(e) => return Err(failure(what, key, &e)),
            }
        }
        Err(store_error(
            format!("FlinkStateSnapshot {key} keeps changing; {what} is retried on the next pass"),
            true,
        ))
    }

    /// A deployment as the caches hold it (or the API server, when no cache has it), without
    /// touching the deployments' bases: a snapshot's pass only reads its target.
    async fn peek_deployment(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<FlinkDeployment>, StoreError> {
        if let Some(cached) = self.cached(key) {
            return match &cached.0 {
                Ok(d) => Ok(Some(d.clone())),
                Err(invalid) => Err(store_error(
                    format!("FlinkDeployment {key} cannot be read: {}", invalid.error),
                    false,
                )),
            };
        }
        let api: Api<FlinkDeployment> = Api::namespaced(self.client.clone(), &key.namespace);
        api.get_opt(&key.name)
            .await
            .map_err(|e| super::api_failure("reading", key, &e))
    }

    /// The snapshots whose `jobReference` names the deployment `key`, from the caches.
    pub(super) fn snapshots_referring_to(&self, key: &ResourceKey) -> Vec<FlinkStateSnapshot> {
        self.cached_snapshots()
            .into_iter()
            .filter(|s| refers_to(s, key))
            .collect()
    }

    /// Why the stored `key` does not read as a `FlinkStateSnapshot`, naming the field; `None`
    /// when it cannot be read again or reads fine now.
    async fn unreadable_snapshot_field(&self, key: &ResourceKey) -> Option<String> {
        let resource = ApiResource::erase::<FlinkStateSnapshot>(&());
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &key.namespace, &resource);
        let object = api.get_opt(&key.name).await.ok()??;
        let value = serde_json::to_value(object).ok()?;
        match serde_path_to_error::deserialize::<_, FlinkStateSnapshot>(value) {
            Ok(_) => None,
            Err(e) => Some(format!("{}: {}", e.path(), e.inner())),
        }
    }

    /// Reports an object that cannot be read as a `FlinkStateSnapshot`: a `ValidationError`
    /// event and `status.error` (nothing else is done with it).
    pub async fn report_unreadable_snapshot(
        &self,
        key: &ResourceKey,
        reference: &ObjectReference,
        error: &str,
    ) -> Result<(), StoreError> {
        let error = self
            .unreadable_snapshot_field(key)
            .await
            .unwrap_or_else(|| error.to_string());
        let message = format!(
            "Invalid FlinkStateSnapshot, nothing was done: the object cannot be read: {error}"
        );
        let event = Event::warning(engine::EventReason::ValidationError, message.clone());
        if let Err(e) = self.events.publish(reference, &[event]).await {
            tracing::warn!(snapshot = %key, error = %e, "could not record an event");
        }
        self.fenced()?;
        let resource = ApiResource::erase::<FlinkStateSnapshot>(&());
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &key.namespace, &resource);
        let patch = json!({"status": {"error": message}});
        api.patch_status(&key.name, &self.patch_params(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| failure("writing the status", key, &e))
    }

    /// Creates `snapshot`; one that exists already under its name counts as created.
    pub(super) async fn create_snapshot_resource(
        &self,
        snapshot: &FlinkStateSnapshot,
    ) -> Result<(), StoreError> {
        let key = engine::snapshot::snapshot_key(snapshot);
        self.fenced()?;
        let params = PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..Default::default()
        };
        match self
            .snapshot_api(&key.namespace)
            .create(&params, snapshot)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, 409) => Ok(()),
            Err(e) => Err(failure("creating", &key, &e)),
        }
    }

    /// Deletes the snapshot `key` (its finalizer keeps it until its files are handled); a
    /// missing one counts as deleted.
    pub(super) async fn delete_snapshot_resource(
        &self,
        key: &ResourceKey,
    ) -> Result<(), StoreError> {
        self.fenced()?;
        match self
            .snapshot_api(&key.namespace)
            .delete(&key.name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, 404) => Ok(()),
            Err(e) => Err(failure("deleting", key, &e)),
        }
    }
}

impl SnapshotStore for K8sStore {
    /// Changes whenever a cached snapshot changes. The Kubernetes controller is driven by
    /// watches and never polls it.
    async fn snapshot_revision(&self) -> Result<u64, StoreError> {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for cache in &self.snapshot_caches {
            for obj in cache.state() {
                for b in obj.resource_version().unwrap_or_default().bytes() {
                    hash ^= u64::from(b);
                    hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
                }
            }
        }
        Ok(hash)
    }

    async fn list_snapshots(&self) -> Result<Vec<FlinkStateSnapshot>, StoreError> {
        Ok(self.cached_snapshots())
    }

    async fn get_snapshot(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<FlinkStateSnapshot>, StoreError> {
        let written = self
            .snapshot_bases()
            .get(key)
            .and_then(|b| b.written.clone());
        let cached = self.cached_snapshot(key);
        let trusted = match (&cached, &written) {
            (Some(c), Some(w)) => c.resource_version().as_deref() == Some(w.as_str()),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !trusted {
            return self.fetch_snapshot(key).await;
        }
        match cached.as_deref().map(|g| &g.0) {
            Some(Ok(s)) => {
                self.snapshot_bases()
                    .insert(key.clone(), SnapshotBase::of(s));
                Ok(Some(s.clone()))
            }
            Some(Err(invalid)) => Err(store_error(
                format!("FlinkStateSnapshot {key} cannot be read: {}", invalid.error),
                false,
            )),
            None => Ok(None),
        }
    }

    async fn get_deployment(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<FlinkDeployment>, StoreError> {
        self.peek_deployment(key).await
    }

    async fn write_snapshot_status(
        &self,
        key: &ResourceKey,
        status: &FlinkStateSnapshotStatus,
    ) -> Result<(), StoreError> {
        let resource = ApiResource::erase::<FlinkStateSnapshot>(&());
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &key.namespace, &resource);
        let status_value = serde_json::to_value(status).map_err(|e| {
            store_error(
                format!("cannot write the status of FlinkStateSnapshot {key}: {e}"),
                false,
            )
        })?;
        for _ in 0..CONFLICT_RETRIES {
            let base = self.snapshot_base(key).await?;
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
                    self.wrote_snapshot(key, rv, |b| b.status = Some(status.clone()));
                    return Ok(());
                }
                Err(e) if is_code(&e, 409) => {
                    let current = self.fetch_snapshot(key).await?.ok_or_else(|| {
                        store_error(format!("FlinkStateSnapshot {key} was deleted"), true)
                    })?;
                    if current.status != base.status {
                        return Err(store_error(
                            format!(
                                "the status of FlinkStateSnapshot {key} was changed by another \
                                 writer; the next pass decides again from it"
                            ),
                            true,
                        ));
                    }
                    tracing::debug!(snapshot = %key, "status write conflicted with a spec or metadata change; retrying on the new version");
                }
                Err(e) => return Err(failure("writing the status", key, &e)),
            }
        }
        Err(store_error(
            format!(
                "FlinkStateSnapshot {key} keeps changing; its status is written on the next pass"
            ),
            true,
        ))
    }

    async fn set_snapshot_labels(
        &self,
        key: &ResourceKey,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        self.patch_snapshot_metadata(key, "writing the labels", |base| {
            labels_patch(&base.labels, labels)
        })
        .await
    }

    async fn record_snapshot_events(
        &self,
        key: &ResourceKey,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let reference = self.snapshot_base(key).await?.reference;
        self.events
            .publish(&reference, events)
            .await
            .map_err(|e| store_error(format!("FlinkStateSnapshot {key}: {e}"), true))
    }

    async fn add_snapshot_finalizer(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.patch_snapshot_metadata(key, "writing the finalizers", |base| {
            (!base.finalizers.iter().any(|f| f == SNAPSHOT_FINALIZER)).then(|| {
                let mut next = base.finalizers.clone();
                next.push(SNAPSHOT_FINALIZER.to_string());
                json!({ "finalizers": next })
            })
        })
        .await
    }

    async fn remove_snapshot_finalizer(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.patch_snapshot_metadata(key, "writing the finalizers", |base| {
            base.finalizers
                .iter()
                .any(|f| f == SNAPSHOT_FINALIZER)
                .then(|| {
                    let next: Vec<&String> = base
                        .finalizers
                        .iter()
                        .filter(|f| *f != SNAPSHOT_FINALIZER)
                        .collect();
                    json!({ "finalizers": next })
                })
        })
        .await?;
        self.snapshot_bases().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_labels_patch_sets_every_wanted_label_and_removes_the_others() {
        let current = map(&[("team", "a"), ("job-reference.name", "old")]);
        let wanted = map(&[("team", "a"), ("snapshot.state", "COMPLETED")]);
        assert_eq!(
            labels_patch(&current, &wanted),
            Some(json!({"labels": {
                "team": "a",
                "snapshot.state": "COMPLETED",
                "job-reference.name": null,
            }}))
        );
        assert_eq!(labels_patch(&wanted, &wanted), None, "nothing to write");
    }
}
