//! Reconciling `FlinkStateSnapshot`s: one pass ([`reconcile_snapshot`], what a Kubernetes
//! controller calls too) and the loop for polled stores ([`run`], see [`crate::polled`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::act::{SnapshotStore, act_snapshot};
use super::decide::{SnapshotInput, decide_snapshot};
use super::observe::{observe_snapshot, snapshot_needs};
use super::{session_job_key, snapshot_key, target_key};
use crate::act::StoreError;
use crate::backend::{ClusterBackend, ResourceKey};
use crate::controller::{ControllerOptions, PassResult, now_ms};
use crate::polled::{self, PolledKind, Seen};
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

/// The snapshots of a store, for the polling loop.
struct Snapshots<B, S> {
    backend: Arc<B>,
    store: Arc<S>,
    settings: Arc<Settings>,
}

impl<B: ClusterBackend, S: SnapshotStore> PolledKind for Snapshots<B, S> {
    type Error = StoreError;
    const NAME: &'static str = "FlinkStateSnapshot";

    async fn revision(&self) -> Result<u64, StoreError> {
        self.store.snapshot_revision().await
    }

    async fn list(&self) -> Result<Vec<(ResourceKey, Seen)>, StoreError> {
        let all = self.store.list_snapshots().await?;
        Ok(all
            .iter()
            .map(|s| {
                let seen = (
                    s.metadata.generation,
                    s.metadata.deletion_timestamp.is_some(),
                );
                (snapshot_key(s), seen)
            })
            .collect())
    }

    async fn pass(&self, key: &ResourceKey) -> Result<PassResult, StoreError> {
        reconcile_snapshot(
            self.backend.as_ref(),
            self.store.as_ref(),
            &self.settings,
            key,
        )
        .await
    }
}

/// Runs the snapshot controller until `shutdown` resolves.
pub async fn run<B: ClusterBackend, S: SnapshotStore>(
    backend: Arc<B>,
    store: Arc<S>,
    settings: Arc<Settings>,
    options: ControllerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let kind = Snapshots {
        backend,
        store,
        settings,
    };
    polled::drive(Arc::new(kind), options, shutdown).await;
}
