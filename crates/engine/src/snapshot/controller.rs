//! Reconciling `FlinkStateSnapshot`s: one pass ([`reconcile_snapshot`], what a Kubernetes
//! controller calls too) and the loop for polled stores ([`run`]), one task per snapshot, woken
//! by changes of its spec or deletion.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::act::{SnapshotStore, act_snapshot};
use super::decide::{SnapshotInput, decide_snapshot};
use super::observe::{observe_snapshot, snapshot_needs};
use super::{session_job_key, snapshot_key, target_key};
use crate::act::StoreError;
use crate::backend::{ClusterBackend, ResourceKey};
use crate::controller::{ControllerOptions, PassResult, backoff, now_ms};
use crate::settings::Settings;

/// How long a settled snapshot (completed, failed, abandoned) sleeps; a change of it wakes it
/// sooner.
const SETTLED: Duration = Duration::from_secs(3600);

/// One reconcile pass of one snapshot: observe → decide → act.
pub async fn reconcile_snapshot<B: ClusterBackend, S: SnapshotStore>(
    backend: &B,
    store: &S,
    settings: &Settings,
    key: &ResourceKey,
) -> Result<PassResult, StoreError> {
    let Some(snapshot) = store.get_snapshot(key).await? else {
        return Ok(PassResult::Gone);
    };
    let target = target(store, &snapshot).await?;
    let needs = snapshot_needs(&snapshot, target.as_ref());
    let observed = observe_snapshot(backend, &needs).await;
    let now = now_ms();
    let trigger_id = flink::TriggerId::generate();
    let decision = decide_snapshot(SnapshotInput {
        snapshot: &snapshot,
        target: target.as_ref(),
        observed: &observed,
        settings,
        now_ms: now,
        fresh_trigger_id: trigger_id.as_str(),
        session_jobs: store.has_session_jobs(),
    });
    for action in &decision.actions {
        tracing::info!(snapshot = %key, action = action.name(), "acting");
    }
    let cluster = target.as_ref().map(crate::decide::resource_key);
    let report = act_snapshot(
        backend,
        store,
        &snapshot,
        cluster.as_ref(),
        &decision,
        settings,
        now,
    )
    .await?;
    if report.removed {
        return Ok(PassResult::Gone);
    }
    Ok(PassResult::Requeue(report.requeue_after.unwrap_or(SETTLED)))
}

/// The deployment whose job a snapshot is of. For a `FlinkSessionJob`: its session cluster's
/// `FlinkDeployment` with the session job's `jobStatus` (the job to snapshot, the paths it
/// restores from), so the rest of the reconciler is the same for both kinds.
async fn target<S: SnapshotStore>(
    store: &S,
    snapshot: &api::FlinkStateSnapshot,
) -> Result<Option<api::FlinkDeployment>, StoreError> {
    if let Some(t) = target_key(snapshot) {
        return store.get_deployment(&t).await;
    }
    let Some(job) = session_job_key(snapshot) else {
        return Ok(None);
    };
    let Some(job) = store.get_session_job(&job).await? else {
        return Ok(None);
    };
    let Some(cluster) = crate::session_job::deployment_key(&job) else {
        return Ok(None);
    };
    let Some(mut deployment) = store.get_deployment(&cluster).await? else {
        return Ok(None);
    };
    let status = deployment.status.get_or_insert_with(Default::default);
    status.job_status = job.status.and_then(|s| s.job_status);
    Ok(Some(deployment))
}

/// What wakes a snapshot's task when it changes: its `generation` and whether it is being
/// deleted.
type Seen = (Option<i64>, bool);

/// Runs the snapshot controller until `shutdown` resolves.
pub async fn run<B: ClusterBackend, S: SnapshotStore>(
    backend: Arc<B>,
    store: Arc<S>,
    settings: Arc<Settings>,
    options: ControllerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: JoinSet<ResourceKey> = JoinSet::new();
    let mut running: HashMap<ResourceKey, (Arc<Notify>, Seen)> = HashMap::new();
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
                    last_revision = None;
                }
            }
            _ = tick.tick() => {
                let revision = match store.snapshot_revision().await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the store revision");
                        continue;
                    }
                };
                if last_revision == Some(revision) {
                    continue;
                }
                let snapshots = match store.list_snapshots().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list snapshots");
                        continue;
                    }
                };
                last_revision = Some(revision);
                for snapshot in snapshots {
                    let key = snapshot_key(&snapshot);
                    let seen = (
                        snapshot.metadata.generation,
                        snapshot.metadata.deletion_timestamp.is_some(),
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
                    tasks.spawn(snapshot_task(
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
        tasks.abort_all();
    }
}

async fn snapshot_task<B: ClusterBackend, S: SnapshotStore>(
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
        let wait = match reconcile_snapshot(backend.as_ref(), store.as_ref(), &settings, &key).await
        {
            Ok(PassResult::Gone) => break,
            Ok(PassResult::Requeue(after)) => {
                failures = 0;
                after
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = backoff(&options, failures);
                tracing::warn!(snapshot = %key, error = %e, retry_in = ?wait, "reconcile failed");
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
