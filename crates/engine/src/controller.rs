//! The controller loop for stores that are polled (the local file store): one task per
//! resource, one pass at a time per resource, woken early by spec changes, with exponential
//! backoff per resource on errors.
//!
//! Shutting down stops reconciling and leaves every cluster running: the next controller
//! re-adopts them, and every step is safe to repeat.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::FlinkDeployment;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::act::{ActError, StatusStore, StoreError, act};
use crate::backend::{BackendError, ClusterBackend, ResourceKey};
use crate::decide::{DecideInput, FreshIds, decide, observe_needs, resource_key};
use crate::observe::observe;
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

/// A resource's wake-up handle and the `(generation, deleting)` last seen of it.
type Watched = (Arc<Notify>, (Option<i64>, bool));

/// Runs the controller until `shutdown` resolves.
pub async fn run<B: ClusterBackend, S: ResourceStore>(
    backend: Arc<B>,
    store: Arc<S>,
    settings: Arc<Settings>,
    options: ControllerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: JoinSet<ResourceKey> = JoinSet::new();
    let mut running: HashMap<ResourceKey, Watched> = HashMap::new();
    let mut last_revision = None;
    let mut tick = tokio::time::interval(options.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(done) = tasks.join_next() => {
                if let Ok(key) = done {
                    running.remove(&key);
                    // it may have been recreated meanwhile
                    last_revision = None;
                }
            }
            _ = tick.tick() => {
                let revision = match store.revision().await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the store revision");
                        continue;
                    }
                };
                if last_revision == Some(revision) {
                    continue;
                }
                let resources = match store.list().await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list resources");
                        continue;
                    }
                };
                last_revision = Some(revision);
                for resource in resources {
                    let key = resource_key(&resource);
                    let seen = (
                        resource.metadata.generation,
                        resource.metadata.deletion_timestamp.is_some(),
                    );
                    if let Some((notify, last)) = running.get_mut(&key) {
                        if *last != seen {
                            *last = seen;
                            notify.notify_one();
                        }
                        continue;
                    }
                    let notify = Arc::new(Notify::new());
                    running.insert(key.clone(), (notify.clone(), seen));
                    tasks.spawn(resource_task(
                        backend.clone(),
                        store.clone(),
                        settings.clone(),
                        options.clone(),
                        key,
                        notify,
                        stop_rx.clone(),
                    ));
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("passes still running after the shutdown grace period were abandoned");
        tasks.abort_all();
    }
}

/// Reconciles one resource until it is gone or the controller stops.
async fn resource_task<B: ClusterBackend, S: ResourceStore>(
    backend: Arc<B>,
    store: Arc<S>,
    settings: Arc<Settings>,
    options: ControllerOptions,
    key: ResourceKey,
    notify: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) -> ResourceKey {
    let mut failures: u32 = 0;
    loop {
        if *stop.borrow() {
            break;
        }
        let wait = match reconcile(backend.as_ref(), store.as_ref(), &settings, &key).await {
            Ok(PassResult::Gone) => break,
            Ok(PassResult::Requeue(after)) => {
                failures = 0;
                after
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = backoff(&options, failures);
                tracing::warn!(resource = %key, error = %e, retry_in = ?wait, "reconcile failed");
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = notify.notified() => {}
            _ = stop.changed() => break,
        }
    }
    key
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
