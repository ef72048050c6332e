//! The local file store seen through the engine's store traits: status writes, events and
//! finalizers for `act`, cheap polling for the controller. The store is synchronous (small
//! files, fsync), so each call runs on the blocking pool.

use std::sync::Arc;

use api::{FlinkDeployment, FlinkDeploymentStatus};
use engine::{Event, FINALIZER, ResourceKey, ResourceStore, StatusStore, StoreError};
use local::EventType;
use local::LocalStore;

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
        let (key, status) = (key.clone(), status.clone());
        self.blocking(move |s| {
            s.modify_status::<FlinkDeployment>(&key, |current| *current = Some(status))
                .map(|_| ())
        })
        .await
    }

    async fn record_events(&self, key: &ResourceKey, events: &[Event]) -> Result<(), StoreError> {
        let key = key.clone();
        let events: Vec<local::Event> = events.iter().map(local_event).collect();
        self.blocking(move |s| {
            for e in &events {
                s.record_event::<FlinkDeployment>(&key, e)?;
            }
            Ok(())
        })
        .await
    }

    async fn add_finalizer(&self, key: &ResourceKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.blocking(move |s| {
            s.add_finalizer::<FlinkDeployment>(&key, FINALIZER)
                .map(|_| ())
        })
        .await
    }

    async fn finish_deletion(&self, key: &ResourceKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.blocking(move |s| {
            s.remove_finalizer::<FlinkDeployment>(&key, FINALIZER)
                .map(|_| ())
        })
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
}
