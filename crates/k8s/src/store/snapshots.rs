//! `FlinkStateSnapshot`s on the Kubernetes API: the engine's [`SnapshotStore`] on [`K8sStore`],
//! and the snapshot operations a deployment's pass needs (its snapshots, create, delete).
//!
//! The same rules as the deployments' store: reads from the snapshot controller's watch caches
//! unless the cache has not yet seen our own last write (then from the API server); the status
//! goes to the status subresource as a replace guarded by the `resourceVersion` the decision
//! was made from, re-read on `409` and retried only while the stored status is unchanged;
//! labels and the finalizer are merge patches guarded by the version too. Every write checks
//! the fence first. The shared mechanics are in `store/tracked.rs`.

use std::collections::BTreeMap;

use api::{FlinkDeployment, FlinkStateSnapshot, FlinkStateSnapshotStatus};
use engine::snapshot::{SNAPSHOT_FINALIZER, SnapshotStore, refers_to};
use engine::{Event, ResourceKey, StoreError};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::DeleteParams;
use kube::core::DeserializeGuard;
use serde_json::{Value, json};

use super::K8sStore;
use super::tracked::{TrackedKind, failure, is_code};

/// A `FlinkStateSnapshot` as the watch caches hold it: read, or kept with why it could not be.
pub type GuardedSnapshot = DeserializeGuard<FlinkStateSnapshot>;

impl TrackedKind for FlinkStateSnapshot {
    type Status = FlinkStateSnapshotStatus;

    fn status(&self) -> Option<&FlinkStateSnapshotStatus> {
        self.status.as_ref()
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

impl K8sStore {
    /// The cached snapshot of `key`, if a snapshot cache holds it.
    pub fn cached_snapshot(&self, key: &ResourceKey) -> Option<std::sync::Arc<GuardedSnapshot>> {
        self.snapshots.cached(key)
    }

    /// The snapshots whose `jobReference` names the deployment `key`, from the caches.
    pub(super) fn snapshots_referring_to(&self, key: &ResourceKey) -> Vec<FlinkStateSnapshot> {
        self.snapshots
            .all()
            .into_iter()
            .filter(|s| refers_to(s, key))
            .collect()
    }

    /// Reports an object that cannot be read as a `FlinkStateSnapshot`: a `ValidationError`
    /// event and `status.error` naming the field (nothing else is done with it).
    pub async fn report_unreadable_snapshot(
        &self,
        key: &ResourceKey,
        reference: &ObjectReference,
        error: &str,
    ) -> Result<(), StoreError> {
        self.snapshots
            .report_unreadable(
                &self.writer,
                key,
                reference,
                error,
                |why| {
                    format!(
                        "Invalid FlinkStateSnapshot, nothing was done: the object cannot be \
                         read: {why}"
                    )
                },
                |message| json!({ "error": message }),
            )
            .await
    }

    /// Creates `snapshot`; one that exists already under its name counts as created.
    pub(super) async fn create_snapshot_resource(
        &self,
        snapshot: &FlinkStateSnapshot,
    ) -> Result<(), StoreError> {
        let key = engine::snapshot::snapshot_key(snapshot);
        self.writer.fenced()?;
        match self
            .writer
            .api::<FlinkStateSnapshot>(&key.namespace)
            .create(&self.writer.post_params(), snapshot)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, 409) => Ok(()),
            Err(e) => Err(failure::<FlinkStateSnapshot>("creating", &key, &e)),
        }
    }

    /// Deletes the snapshot `key` (its finalizer keeps it until its files are handled); a
    /// missing one counts as deleted.
    pub(super) async fn delete_snapshot_resource(
        &self,
        key: &ResourceKey,
    ) -> Result<(), StoreError> {
        self.writer.fenced()?;
        match self
            .writer
            .api::<FlinkStateSnapshot>(&key.namespace)
            .delete(&key.name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, 404) => Ok(()),
            Err(e) => Err(failure::<FlinkStateSnapshot>("deleting", key, &e)),
        }
    }
}

impl SnapshotStore for K8sStore {
    /// Changes whenever a cached snapshot changes. The Kubernetes controller is driven by
    /// watches and never polls it.
    async fn snapshot_revision(&self) -> Result<u64, StoreError> {
        Ok(self.snapshots.revision())
    }

    async fn list_snapshots(&self) -> Result<Vec<FlinkStateSnapshot>, StoreError> {
        Ok(self.snapshots.all())
    }

    async fn get_snapshot(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<FlinkStateSnapshot>, StoreError> {
        self.snapshots.get(&self.writer, key).await
    }

    /// The target as the caches hold it, without touching the deployments' bases: a
    /// snapshot's pass only reads its target.
    async fn get_deployment(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<FlinkDeployment>, StoreError> {
        self.deployments.peek(&self.writer, key).await
    }

    fn has_session_jobs(&self) -> bool {
        self.keeps_session_jobs()
    }

    async fn get_session_job(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<api::FlinkSessionJob>, StoreError> {
        self.session_jobs.peek(&self.writer, key).await
    }

    async fn write_snapshot_status(
        &self,
        key: &ResourceKey,
        status: &FlinkStateSnapshotStatus,
    ) -> Result<(), StoreError> {
        self.snapshots.write_status(&self.writer, key, status).await
    }

    async fn set_snapshot_labels(
        &self,
        key: &ResourceKey,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        self.snapshots
            .patch_metadata(&self.writer, key, "writing the labels", |base| {
                labels_patch(&base.labels, labels)
            })
            .await
    }

    async fn record_snapshot_events(
        &self,
        key: &ResourceKey,
        events: &[Event],
    ) -> Result<(), StoreError> {
        self.snapshots
            .record_events(&self.writer, key, events)
            .await
    }

    async fn add_snapshot_finalizer(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.snapshots
            .add_finalizer(&self.writer, key, SNAPSHOT_FINALIZER)
            .await
    }

    async fn remove_snapshot_finalizer(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.snapshots
            .remove_finalizer(&self.writer, key, SNAPSHOT_FINALIZER)
            .await
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
