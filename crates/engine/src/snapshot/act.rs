//! `act_snapshot`: the finalizer and labels first, then the decided status (write-ahead: a
//! trigger id is persisted before it is sent), then the actions, then what they changed.
//! Also the REST and storage steps shared with the deployment's `act`.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use api::{FlinkDeployment, FlinkStateSnapshot, FlinkStateSnapshotStatus};
use flink::{CheckpointRequest, CheckpointType, JobId, PollOptions, TriggerId};

use super::decide::{FailContext, SnapshotAction, SnapshotDecision, fail};
use super::{SNAPSHOT_FINALIZER, SnapshotKind, snapshot_key};
use crate::act::{StoreError, flink_result, savepoint};
use crate::action::{Event, EventReason, Outcome};
use crate::backend::{ClusterBackend, ResourceKey};
use crate::settings::Settings;

/// Longest wait for the JobManager to dispose a savepoint.
const DISPOSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where snapshot resources live: the local file store or the Kubernetes API.
pub trait SnapshotStore: Send + Sync + 'static {
    /// A number that changes whenever anything in the store changes (for polling).
    fn snapshot_revision(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Every `FlinkStateSnapshot`.
    fn list_snapshots(
        &self,
    ) -> impl Future<Output = Result<Vec<FlinkStateSnapshot>, StoreError>> + Send;
    /// One `FlinkStateSnapshot`.
    fn get_snapshot(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<Option<FlinkStateSnapshot>, StoreError>> + Send;
    /// The `FlinkDeployment` a snapshot refers to.
    fn get_deployment(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<Option<FlinkDeployment>, StoreError>> + Send;
    /// Whether this store keeps `FlinkSessionJob`s (then [`Self::get_session_job`] finds them).
    fn has_session_jobs(&self) -> bool {
        false
    }
    /// The `FlinkSessionJob` a snapshot refers to; stores without session jobs have none.
    fn get_session_job(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<Option<api::FlinkSessionJob>, StoreError>> + Send {
        let _ = key;
        async { Ok(None) }
    }
    /// Persists the snapshot's status; durable when it returns.
    fn write_snapshot_status(
        &self,
        key: &ResourceKey,
        status: &FlinkStateSnapshotStatus,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Sets the snapshot's labels (all of them).
    fn set_snapshot_labels(
        &self,
        key: &ResourceKey,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records events about the snapshot (best effort).
    fn record_snapshot_events(
        &self,
        key: &ResourceKey,
        events: &[Event],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds [`SNAPSHOT_FINALIZER`].
    fn add_snapshot_finalizer(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes [`SNAPSHOT_FINALIZER`]; a snapshot being deleted then disappears.
    fn remove_snapshot_finalizer(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What one `act_snapshot` did.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotReport {
    /// The status as persisted.
    pub status: FlinkStateSnapshotStatus,
    /// The snapshot is gone (its deletion finished).
    pub removed: bool,
    /// When to look again (the decision's, or the retry after a failed action).
    pub requeue_after: Option<Duration>,
    /// A failed action: `(name, message)`.
    pub failure: Option<(String, String)>,
}

/// Carries out `decision` for `snapshot`; `cluster` is the deployment whose cluster the actions
/// talk to (a session job's: its session cluster).
pub async fn act_snapshot<B: ClusterBackend, S: SnapshotStore>(
    backend: &B,
    store: &S,
    snapshot: &FlinkStateSnapshot,
    cluster: Option<&ResourceKey>,
    decision: &SnapshotDecision,
    settings: &Settings,
    now_ms: i64,
) -> Result<SnapshotReport, StoreError> {
    let key = snapshot_key(snapshot);
    let deleting = snapshot.metadata.deletion_timestamp.is_some();
    let has_finalizer = snapshot
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == SNAPSHOT_FINALIZER));
    if !deleting && !has_finalizer {
        store.add_snapshot_finalizer(&key).await?;
    }
    if snapshot.metadata.labels.clone().unwrap_or_default() != decision.labels {
        store.set_snapshot_labels(&key, &decision.labels).await?;
    }
    let current = snapshot.status.clone().unwrap_or_default();
    if decision.status != current {
        store.write_snapshot_status(&key, &decision.status).await?;
    }
    record(store, &key, &decision.events).await;

    let target = cluster.cloned();
    let mut status = decision.status.clone();
    let mut events = Vec::new();
    let mut requeue = decision.requeue_after;
    let mut failure = None;
    for action in &decision.actions {
        let outcome = run(backend, store, &key, target.as_ref(), action).await;
        if let Outcome::Failed { message, .. } = &outcome {
            tracing::warn!(snapshot = %key, action = action.name(), %message, "action failed");
            failure = Some((action.name().to_string(), message.clone()));
        }
        if matches!(action, SnapshotAction::FinishDeletion) && outcome == Outcome::Done {
            return Ok(SnapshotReport {
                status,
                removed: true,
                requeue_after: None,
                failure,
            });
        }
        let applied = apply_snapshot_outcome(&status, snapshot, action, &outcome, settings, now_ms);
        status = applied.0;
        events.extend(applied.1);
        if let Some(r) = applied.2 {
            requeue = Some(r);
        }
        if outcome != Outcome::Done {
            break;
        }
    }
    if status != decision.status {
        store.write_snapshot_status(&key, &status).await?;
    }
    record(store, &key, &events).await;
    Ok(SnapshotReport {
        status,
        removed: false,
        requeue_after: requeue,
        failure,
    })
}

async fn record<S: SnapshotStore>(store: &S, key: &ResourceKey, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    if let Err(e) = store.record_snapshot_events(key, events).await {
        tracing::warn!(snapshot = %key, error = %e, "could not record events");
    }
}

async fn run<B: ClusterBackend, S: SnapshotStore>(
    backend: &B,
    store: &S,
    key: &ResourceKey,
    target: Option<&ResourceKey>,
    action: &SnapshotAction,
) -> Outcome {
    let no_target = || Outcome::Failed {
        message: format!("{key} names no FlinkDeployment (spec.jobReference)"),
        transient: false,
    };
    match action {
        SnapshotAction::TriggerSavepoint(call) => match target {
            Some(t) => savepoint(backend, t, call, false).await,
            None => no_target(),
        },
        SnapshotAction::TriggerCheckpoint { job_id, trigger_id } => match target {
            Some(t) => flink_result(trigger_checkpoint(backend, t, job_id, trigger_id).await),
            None => no_target(),
        },
        SnapshotAction::Dispose { path, via_flink } => match target {
            Some(t) => dispose(backend, t, path, *via_flink).await,
            None => dispose(backend, key, path, false).await,
        },
        SnapshotAction::FinishDeletion => match store.remove_snapshot_finalizer(key).await {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed {
                message: e.message,
                transient: e.transient,
            },
        },
    }
}

/// The status after `action` ended with `outcome`, the events it deserves, and a requeue
/// when it changes when to look again. Pure.
pub fn apply_snapshot_outcome(
    status: &FlinkStateSnapshotStatus,
    snapshot: &FlinkStateSnapshot,
    action: &SnapshotAction,
    outcome: &Outcome,
    settings: &Settings,
    now_ms: i64,
) -> (FlinkStateSnapshotStatus, Vec<Event>, Option<Duration>) {
    let mut status = status.clone();
    let mut events = Vec::new();
    let mut requeue = None;
    let Outcome::Failed { message, .. } = outcome else {
        if let SnapshotAction::Dispose { path, .. } = action {
            if status
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with(DISPOSE_FAILED))
            {
                status.error = None;
            }
            events.push(Event::normal(
                EventReason::Cleanup,
                format!("Disposed the files at {path}"),
            ));
        }
        return (status, events, requeue);
    };
    let kind = SnapshotKind::of(snapshot);
    let what = format!("{} {}", kind.as_str(), snapshot_key(snapshot));
    match action {
        SnapshotAction::TriggerSavepoint(_) | SnapshotAction::TriggerCheckpoint { .. } => {
            let mut r = None;
            fail(
                &mut status,
                &mut events,
                &mut r,
                FailContext {
                    what: &what,
                    reason: match kind {
                        SnapshotKind::Savepoint => EventReason::SavepointError,
                        SnapshotKind::Checkpoint => EventReason::CheckpointError,
                    },
                    backoff_limit: snapshot.spec.backoff_limit(),
                    settings,
                    now_ms,
                },
                format!("could not trigger the {}: {message}", kind.as_str()),
            );
            requeue = r;
        }
        SnapshotAction::Dispose { path, .. } => {
            let text = format!(
                "{DISPOSE_FAILED}{path}: {message}; the resource stays until its files are \
                 disposed (retried)"
            );
            if status.error.as_deref() != Some(text.as_str()) {
                events.push(Event::warning(EventReason::CleanupFailed, text.clone()));
            }
            status.error = Some(text);
            requeue = Some(settings.retry_interval);
        }
        SnapshotAction::FinishDeletion => {
            requeue = Some(settings.retry_interval);
        }
    }
    (status, events, requeue)
}

/// Prefix of a snapshot's `status.error` when its files could not be disposed.
pub const DISPOSE_FAILED: &str = "Could not dispose ";

/// Sends a checkpoint trigger (a full checkpoint, the Apache operator's default type).
pub(crate) async fn trigger_checkpoint<B: ClusterBackend>(
    backend: &B,
    key: &ResourceKey,
    job_id: &str,
    trigger_id: &str,
) -> Result<(), String> {
    let client = backend.flink_client(key).map_err(|e| e.to_string())?;
    let job: JobId = job_id
        .parse()
        .map_err(|e: flink::ids::InvalidId| e.to_string())?;
    let trigger: TriggerId = trigger_id
        .parse()
        .map_err(|e: flink::ids::InvalidId| e.to_string())?;
    let request = CheckpointRequest {
        checkpoint_type: CheckpointType::Full,
        trigger_id: Some(trigger),
    };
    client
        .trigger_checkpoint(&job, &request)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Disposes the snapshot at `path`: already gone counts as done; through the JobManager of
/// `key` when `via_flink`, else directly on storage through the backend.
pub(crate) async fn dispose<B: ClusterBackend>(
    backend: &B,
    key: &ResourceKey,
    path: &str,
    via_flink: bool,
) -> Outcome {
    if backend.snapshot_exists(path).await == Some(false) {
        // Also finishes what a disposal that was cut short left (no `_metadata` any more).
        return match backend.dispose_snapshot(path).await {
            Some(Err(e)) => Outcome::Failed {
                message: e.to_string(),
                transient: true,
            },
            _ => Outcome::Done,
        };
    }
    if via_flink {
        let result = async {
            let client = backend.flink_client(key).map_err(|e| e.to_string())?;
            let poll = PollOptions::new(DISPOSE_TIMEOUT, Duration::from_millis(250));
            client
                .dispose_savepoint(path, poll)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        return match result {
            Ok(()) => {
                // Flink deletes the state files; remove what is left of the directory too.
                let _ = backend.dispose_snapshot(path).await;
                Outcome::Done
            }
            Err(_) if backend.snapshot_exists(path).await == Some(false) => Outcome::Done,
            // The JobManager did not answer (e.g. a cluster just redeployed): storage this
            // backend reaches is disposed directly, as when no cluster runs.
            Err(message) => match backend.dispose_snapshot(path).await {
                Some(Ok(())) => Outcome::Done,
                _ => Outcome::Failed {
                    message: format!("the JobManager could not dispose {path}: {message}"),
                    transient: true,
                },
            },
        };
    }
    match backend.dispose_snapshot(path).await {
        Some(Ok(())) => Outcome::Done,
        Some(Err(e)) => Outcome::Failed {
            message: e.to_string(),
            transient: true,
        },
        None => Outcome::Failed {
            message: format!(
                "cannot dispose {path}: no Flink cluster runs to dispose it and its storage is \
                 not reachable from here; it is retried while the deployment's cluster runs"
            ),
            transient: true,
        },
    }
}
