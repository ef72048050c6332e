//! One reconcile pass of a `FlinkDeployment` ([`reconcile`]: observe → decide → act), shared
//! by both backends, and the controller for polled stores ([`run`], see [`crate::polled`]).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::FlinkDeployment;

use crate::act::{ActError, StatusStore, StoreError, act};
use crate::backend::{BackendError, ClusterBackend, ResourceKey};
use crate::decide::{DecideInput, FreshIds, decide, observe_needs, resource_key};
use crate::observe::observe;
use crate::polled::{self, PolledKind, Seen};
use crate::settings::Settings;

/// A store the controller can list and poll cheaply.
pub trait ResourceStore: StatusStore {
    /// A number that changes whenever anything in the store changes.
    fn revision(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Every `FlinkDeployment`.
    fn list(&self) -> impl Future<Output = Result<Vec<FlinkDeployment>, StoreError>> + Send;
    /// One `FlinkDeployment`, `None` when it does not exist (any more).
    fn get(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<Option<FlinkDeployment>, StoreError>> + Send;

    /// The `FlinkStateSnapshot`s whose `jobReference` names the deployment `key` (for periodic
    /// snapshots and retention). None when the store has no snapshot resources.
    fn snapshots_of(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<Vec<api::FlinkStateSnapshot>, StoreError>> + Send {
        let _ = key;
        async { Ok(Vec::new()) }
    }
}

/// Timing of the controller itself (the engine's timing is in [`Settings`]).
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// How often the store is polled for changes.
    pub poll_interval: Duration,
    /// First wait after a failed pass; doubled per consecutive failure.
    pub backoff_start: Duration,
    /// Longest wait after failures.
    pub backoff_max: Duration,
    /// How long shutdown waits for passes in flight.
    pub shutdown_grace: Duration,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            poll_interval: Duration::from_millis(200),
            backoff_start: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// A failed pass.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The backend could not observe the cluster.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The status could not be persisted.
    #[error(transparent)]
    Act(#[from] ActError),
    /// An action failed (its message is in the status and events).
    #[error("{0}")]
    Action(String),
}

/// What one pass ended with.
#[derive(Debug)]
pub enum PassResult {
    /// Run the next pass after this long (unless woken earlier).
    Requeue(Duration),
    /// The resource is gone; its task ends.
    Gone,
}

/// Now, epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One reconcile pass of one resource: observe → decide → act.
pub async fn reconcile<B: ClusterBackend, S: ResourceStore>(
    backend: &B,
    store: &S,
    settings: &Settings,
    key: &ResourceKey,
) -> Result<PassResult, PassError> {
    let Some(resource) = store.get(key).await? else {
        return Ok(PassResult::Gone);
    };
    let needs = observe_needs(&resource, settings);
    let mut observation = observe(backend, key, &needs).await?;
    observation.snapshots.resources = store.snapshots_of(key).await?;
    let now = now_ms();
    let fresh = FreshIds::generate();
    let decision = decide(DecideInput {
        resource: &resource,
        observation: &observation,
        settings,
        now_ms: now,
        fresh: &fresh,
    });
    for action in &decision.actions {
        tracing::info!(resource = %key, action = action.name(), "acting");
    }
    let report = act(backend, store, &resource, &decision, now).await?;
    if report.removed {
        return Ok(PassResult::Gone);
    }
    if let Some((action, message, true)) = report.failures.first() {
        return Err(PassError::Action(format!("{action}: {message}")));
    }
    Ok(PassResult::Requeue(decision.requeue_after))
}

/// The deployments of a store, for the polling loop.
struct Deployments<B, S> {
    backend: Arc<B>,
    store: Arc<S>,
    settings: Arc<Settings>,
}

impl<B: ClusterBackend, S: ResourceStore> PolledKind for Deployments<B, S> {
    type Error = PassError;
    const NAME: &'static str = "FlinkDeployment";

    async fn revision(&self) -> Result<u64, StoreError> {
        self.store.revision().await
    }

    async fn list(&self) -> Result<Vec<(ResourceKey, Seen)>, StoreError> {
        let all = self.store.list().await?;
        Ok(all
            .iter()
            .map(|d| {
                let seen = (
                    d.metadata.generation,
                    d.metadata.deletion_timestamp.is_some(),
                );
                (resource_key(d), seen)
            })
            .collect())
    }

    async fn pass(&self, key: &ResourceKey) -> Result<PassResult, PassError> {
        reconcile(
            self.backend.as_ref(),
            self.store.as_ref(),
            &self.settings,
            key,
        )
        .await
    }
}

/// Runs the controller of the `FlinkDeployment`s until `shutdown` resolves.
pub async fn run<B: ClusterBackend, S: ResourceStore>(
    backend: Arc<B>,
    store: Arc<S>,
    settings: Arc<Settings>,
    options: ControllerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let kind = Deployments {
        backend,
        store,
        settings,
    };
    polled::drive(Arc::new(kind), options, shutdown).await;
}

/// `start · 2^(failures-1)`, capped.
pub(crate) fn backoff(options: &ControllerOptions, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    options
        .backoff_start
        .saturating_mul(factor)
        .min(options.backoff_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let o = ControllerOptions::default();
        assert_eq!(backoff(&o, 1), Duration::from_secs(1));
        assert_eq!(backoff(&o, 2), Duration::from_secs(2));
        assert_eq!(backoff(&o, 4), Duration::from_secs(8));
        assert_eq!(backoff(&o, 40), Duration::from_secs(60));
    }
}
