//! The local file store seen through the engine's store traits: status writes, events and
//! finalizers for `act`, cheap polling for the controllers (deployments, `FlinkSessionJob`s and
//! `FlinkStateSnapshot`s). The store is synchronous (small
//! files, fsync), so each call runs on the blocking pool.

use std::sync::Arc;

use std::collections::BTreeMap;

use api::{
    FlinkDeployment, FlinkDeploymentStatus, FlinkSessionJob, FlinkSessionJobStatus,
    FlinkStateSnapshot, FlinkStateSnapshotStatus,
};
use engine::session_job::{SESSION_JOB_FINALIZER, SessionJobStore};
use engine::snapshot::{SNAPSHOT_FINALIZER, SnapshotStore};
use engine::{Event, FINALIZER, ResourceKey, ResourceStore, StatusStore, StoreError};
use kube::core::object::HasStatus;
use local::EventType;
use local::{LocalStore, StoredObject};

/// `LocalStore` as the engine's `StatusStore` and `ResourceStore`.
#[derive(Clone, Debug)]
pub struct StoreAdapter {
    store: Arc<LocalStore>,
}

impl StoreAdapter {
    /// Wraps a store.
    pub fn new(store: LocalStore) -> Self {
        StoreAdapter {
            store: Arc::new(store),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LocalStore) -> Result<T, local::StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(result) => result.map_err(|e| StoreError {
                transient: !matches!(e, local::StoreError::InvalidName { .. }),
                message: e.to_string(),
            }),
            Err(e) => Err(StoreError {
                message: format!("a store task failed: {e}"),
                transient: true,
            }),
        }
    }

    /// Replaces the status of the `K` named `key`.
    async fn put_status<K>(&self, key: &ResourceKey, status: &K::Status) -> Result<(), StoreError>
    where
        K: StoredObject + HasStatus + Send + 'static,
        K::Status: Clone + Send + 'static,
    {
        let (key, status) = (key.clone(), status.clone());
        self.blocking(move |s| {
            s.modify_status::<K>(&key, |current| *current = Some(status))
                .map(|_| ())
        })
        .await
    }

    /// Appends `events` to the events of the `K` named `key`.
    async fn put_events<K: StoredObject>(
        &self,
        key: &ResourceKey,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let key = key.clone();
        let events: Vec<local::Event> = events.iter().map(local_event).collect();
        self.blocking(move |s| {
            for e in &events {
                s.record_event::<K>(&key, e)?;
            }
            Ok(())
        })
        .await
    }

    /// Adds (`add`) or removes `finalizer` on the `K` named `key`.
    async fn set_finalizer<K: StoredObject + Send + 'static>(
        &self,
        key: &ResourceKey,
        finalizer: &'static str,
        add: bool,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        self.blocking(move |s| {
            if add {
                s.add_finalizer::<K>(&key, finalizer).map(|_| ())
            } else {
                s.remove_finalizer::<K>(&key, finalizer).map(|_| ())
            }
        })
        .await
    }
}

fn local_event(e: &Event) -> local::Event {
    let event_type = match e.type_ {
        engine::EventType::Normal => EventType::Normal,
        engine::EventType::Warning => EventType::Warning,
    };
    local::Event::new(event_type, e.reason.as_str(), e.message.clone())
}

impl StatusStore for StoreAdapter {
    async fn write_status(
        &self,
        key: &ResourceKey,
        status: &FlinkDeploymentStatus,
    ) -> Result<(), StoreError> {
        self.put_status::<FlinkDeployment>(key, status).await
    }

    async fn record_events(&self, key: &ResourceKey, events: &[Event]) -> Result<(), StoreError> {
        self.put_events::<FlinkDeployment>(key, events).await
    }

    async fn add_finalizer(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.set_finalizer::<FlinkDeployment>(key, FINALIZER, true)
            .await
    }

    async fn finish_deletion(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.set_finalizer::<FlinkDeployment>(key, FINALIZER, false)
            .await
    }

    async fn create_snapshot(&self, snapshot: &FlinkStateSnapshot) -> Result<(), StoreError> {
        let snapshot = snapshot.clone();
        self.blocking(move |s| s.create(snapshot).map(|_| ())).await
    }

    async fn delete_snapshot(&self, key: &ResourceKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.blocking(move |s| s.mark_deleted::<FlinkStateSnapshot>(&key).map(|_| ()))
            .await
    }
}

impl ResourceStore for StoreAdapter {
    async fn revision(&self) -> Result<u64, StoreError> {
        self.blocking(LocalStore::revision).await
    }

    async fn list(&self) -> Result<Vec<FlinkDeployment>, StoreError> {
        self.blocking(LocalStore::list::<FlinkDeployment>).await
    }

    async fn get(&self, key: &ResourceKey) -> Result<Option<FlinkDeployment>, StoreError> {
        let key = key.clone();
        self.blocking(move |s| s.get::<FlinkDeployment>(&key)).await
    }

    async fn snapshots_of(&self, key: &ResourceKey) -> Result<Vec<FlinkStateSnapshot>, StoreError> {
        let key = key.clone();
        self.blocking(move |s| {
            let all = s.list_namespace::<FlinkStateSnapshot>(&key.namespace)?;
            Ok(all
                .into_iter()
                .filter(|snapshot| engine::snapshot::refers_to(snapshot, &key))
                .collect())
        })
        .await
    }
}

impl SnapshotStore for StoreAdapter {
    async fn snapshot_revision(&self) -> Result<u64, StoreError> {
        self.blocking(LocalStore::revision).await
    }

    async fn list_snapshots(&self) -> Result<Vec<FlinkStateSnapshot>, StoreError> {
        self.blocking(LocalStore::list::<FlinkStateSnapshot>).await
    }

    async fn get_snapshot(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<FlinkStateSnapshot>, StoreError> {
        let key = key.clone();
        self.blocking(move |s| s.get::<FlinkStateSnapshot>(&key))
            .await
    }

    async fn get_deployment(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<FlinkDeployment>, StoreError> {
        ResourceStore::get(self, key).await
    }

    fn has_session_jobs(&self) -> bool {
        true
    }

    async fn get_session_job(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<FlinkSessionJob>, StoreError> {
        SessionJobStore::get_session_job(self, key).await
    }

    async fn write_snapshot_status(
        &self,
        key: &ResourceKey,
        status: &FlinkStateSnapshotStatus,
    ) -> Result<(), StoreError> {
        self.put_status::<FlinkStateSnapshot>(key, status).await
    }

    async fn set_snapshot_labels(
        &self,
        key: &ResourceKey,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let (key, labels) = (key.clone(), labels.clone());
        self.blocking(move |s| s.set_labels::<FlinkStateSnapshot>(&key, labels).map(|_| ()))
            .await
    }

    async fn record_snapshot_events(
        &self,
        key: &ResourceKey,
        events: &[Event],
    ) -> Result<(), StoreError> {
        self.put_events::<FlinkStateSnapshot>(key, events).await
    }

    async fn add_snapshot_finalizer(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.set_finalizer::<FlinkStateSnapshot>(key, SNAPSHOT_FINALIZER, true)
            .await
    }

    async fn remove_snapshot_finalizer(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.set_finalizer::<FlinkStateSnapshot>(key, SNAPSHOT_FINALIZER, false)
            .await
    }
}

impl SessionJobStore for StoreAdapter {
    async fn session_job_revision(&self) -> Result<u64, StoreError> {
        self.blocking(LocalStore::revision).await
    }

    async fn list_session_jobs(&self) -> Result<Vec<FlinkSessionJob>, StoreError> {
        self.blocking(LocalStore::list::<FlinkSessionJob>).await
    }

    async fn get_session_job(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<FlinkSessionJob>, StoreError> {
        let key = key.clone();
        self.blocking(move |s| s.get::<FlinkSessionJob>(&key)).await
    }

    async fn get_session_deployment(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<FlinkDeployment>, StoreError> {
        ResourceStore::get(self, key).await
    }

    async fn write_session_job_status(
        &self,
        key: &ResourceKey,
        status: &FlinkSessionJobStatus,
    ) -> Result<(), StoreError> {
        self.put_status::<FlinkSessionJob>(key, status).await
    }

    async fn record_session_job_events(
        &self,
        key: &ResourceKey,
        events: &[Event],
    ) -> Result<(), StoreError> {
        self.put_events::<FlinkSessionJob>(key, events).await
    }

    async fn add_session_job_finalizer(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.set_finalizer::<FlinkSessionJob>(key, SESSION_JOB_FINALIZER, true)
            .await
    }

    async fn remove_session_job_finalizer(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.set_finalizer::<FlinkSessionJob>(key, SESSION_JOB_FINALIZER, false)
            .await
    }
}
