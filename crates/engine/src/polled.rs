//! The loop that drives one kind of resource from a store that is polled (the local file
//! store): one task per resource, one pass at a time per resource, woken early when its
//! `generation` or deletion changes, with exponential backoff per resource on errors. The
//! deployments, snapshots and session jobs each run one such loop.
//!
//! Shutting down stops reconciling and leaves every cluster running: the next controller
//! re-adopts them, and every step is safe to repeat.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::act::StoreError;
use crate::backend::ResourceKey;
use crate::controller::{ControllerOptions, PassResult, backoff};

/// What wakes a resource's task when it changes: its `generation` and whether it is being
/// deleted.
pub(crate) type Seen = (Option<i64>, bool);

/// One kind of resource in a polled store, and its reconcile pass.
pub(crate) trait PolledKind: Send + Sync + 'static {
    /// What a failed pass reports.
    type Error: Display + Send;
    /// The kind in log lines ("resource", "snapshot", "session job").
    const NAME: &'static str;
    /// A number that changes whenever a resource of the kind changes.
    fn revision(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Every resource of the kind.
    fn list(&self) -> impl Future<Output = Result<Vec<(ResourceKey, Seen)>, StoreError>> + Send;
    /// One pass over one resource.
    fn pass(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<PassResult, Self::Error>> + Send;
}

/// A resource's wake-up handle and its `Seen` last time.
type Watched = (Arc<Notify>, Seen);

/// Drives every resource of `kind` until `shutdown` resolves.
pub(crate) async fn drive<K: PolledKind>(
    kind: Arc<K>,
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
                let revision = match kind.revision().await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(kind = K::NAME, error = %e, "cannot read the store revision");
                        continue;
                    }
                };
                if last_revision == Some(revision) {
                    continue;
                }
                let listed = match kind.list().await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(kind = K::NAME, error = %e, "cannot list the store");
                        continue;
                    }
                };
                last_revision = Some(revision);
                for (key, seen) in listed {
                    if let Some((notify, last)) = running.get_mut(&key) {
                        if *last != seen {
                            *last = seen;
                            notify.notify_one();
                        }
                        continue;
                    }
                    let notify = Arc::new(Notify::new());
                    running.insert(key.clone(), (notify.clone(), seen));
                    tasks.spawn(task(
                        kind.clone(),
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
        tracing::warn!(
            kind = K::NAME,
            "passes still running after the shutdown grace period were abandoned"
        );
        tasks.abort_all();
    }
}

/// Reconciles one resource until it is gone or the controller stops.
async fn task<K: PolledKind>(
    kind: Arc<K>,
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
        let wait = match kind.pass(&key).await {
            Ok(PassResult::Gone) => break,
            Ok(PassResult::Requeue(after)) => {
                failures = 0;
                after
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = backoff(&options, failures);
                tracing::warn!(
                    kind = K::NAME, resource = %key, error = %e, retry_in = ?wait,
                    "reconcile failed"
                );
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
