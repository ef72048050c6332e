//! What a snapshot's reconcile reads beyond the store: its trigger in the JobManager, whether
//! its files exist, whether its deployment's cluster runs.

use api::{FlinkDeployment, FlinkStateSnapshot, FlinkStateSnapshotState as State};
use flink::{FlinkClient, JobId, OperationStatus, TriggerId};

use super::{SnapshotKind, snapshot_path};
use crate::backend::{ClusterBackend, ResourceKey};
use crate::observation::{ClusterObservation, TriggerObservation, TriggerState};

/// What to look at for one snapshot (pure; from the snapshot and its deployment).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotNeeds {
    /// The deployment whose cluster to ask.
    pub target: Option<ResourceKey>,
    /// Savepoint or checkpoint trigger to read: `(job id, trigger id)`.
    pub trigger: Option<(String, String)>,
    /// Whether the trigger is a checkpoint's.
    pub checkpoint: bool,
    /// A path whose existence to check on storage.
    pub exists: Option<String>,
    /// Whether to find out if the deployment's cluster runs (for disposal).
    pub cluster: bool,
}

/// What was observed for one snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotObserved {
    /// The trigger's state; `None` when it was not asked or the JobManager did not answer.
    pub trigger: Option<TriggerState>,
    /// Whether the path in question holds a snapshot; `None` when not asked or the backend
    /// cannot look.
    pub exists: Option<bool>,
    /// Whether the deployment's JobManager runs (disposal goes through it then).
    pub cluster_running: bool,
}

/// What to observe for `snapshot`, whose deployment is `target`.
pub fn snapshot_needs(
    snapshot: &FlinkStateSnapshot,
    target: Option<&FlinkDeployment>,
) -> SnapshotNeeds {
    let status = snapshot.status.clone().unwrap_or_default();
    let state = status.state.unwrap_or(State::TriggerPending);
    let deleting = snapshot.metadata.deletion_timestamp.is_some();
    let job_id = target
        .and_then(|t| t.status.as_ref())
        .and_then(|s| s.job_status.as_ref())
        .and_then(|j| j.job_id.clone());
    let trigger = match (state, status.trigger_id, job_id) {
        (State::InProgress, Some(trigger), Some(job)) => Some((job, trigger)),
        _ => None,
    };
    let registering = state == State::TriggerPending
        && snapshot
            .spec
            .savepoint
            .as_ref()
            .is_some_and(|s| s.already_exists());
    let disposing = deleting && state == State::Completed;
    let exists = if registering || disposing {
        snapshot_path(snapshot)
    } else {
        None
    };
    SnapshotNeeds {
        target: target.map(crate::decide::resource_key),
        trigger,
        checkpoint: SnapshotKind::of(snapshot) == SnapshotKind::Checkpoint,
        exists,
        cluster: disposing,
    }
}

/// Observes what `needs` asks for.
pub async fn observe_snapshot<B: ClusterBackend>(
    backend: &B,
    needs: &SnapshotNeeds,
) -> SnapshotObserved {
    let mut observed = SnapshotObserved::default();
    if let Some(path) = &needs.exists {
        observed.exists = backend.snapshot_exists(path).await;
    }
    let Some(target) = &needs.target else {
        return observed;
    };
    let running = if needs.trigger.is_some() || needs.cluster {
        matches!(
            backend.observe(target).await,
            Ok(ClusterObservation::Running { .. })
        )
    } else {
        false
    };
    observed.cluster_running = running;
    if let (true, Some((job, trigger))) = (running, &needs.trigger) {
        let Ok(client) = backend.flink_client(target) else {
            return observed;
        };
        let Ok(job) = job.parse::<JobId>() else {
            return observed;
        };
        let seen = if needs.checkpoint {
            checkpoint_trigger(&client, &job, trigger).await
        } else {
            crate::observe::observe_trigger(&client, &job, trigger).await
        };
        observed.trigger = seen.map(|t| t.state);
    }
    observed
}

/// A manual checkpoint's state; once complete, its path from the checkpoint statistics (still
/// `InProgress` until they list it). `None` when the JobManager did not answer.
pub(crate) async fn checkpoint_trigger(
    client: &FlinkClient,
    job: &JobId,
    trigger: &str,
) -> Option<TriggerObservation> {
    let observation = |state| {
        Some(TriggerObservation {
            trigger_id: trigger.to_string(),
            state,
        })
    };
    let Ok(id) = trigger.parse::<TriggerId>() else {
        return observation(TriggerState::Unknown);
    };
    match client.checkpoint_status(job, &id).await {
        Ok(OperationStatus::InProgress) => observation(TriggerState::InProgress),
        Ok(OperationStatus::Completed(checkpoint_id)) => {
            match client.checkpoint_details(job, checkpoint_id).await {
                Ok(details) => match details.external_path {
                    Some(path) => observation(TriggerState::Completed {
                        location: Some(path),
                    }),
                    None if details.status == "COMPLETED" => {
                        observation(TriggerState::Completed { location: None })
                    }
                    None => observation(TriggerState::InProgress),
                },
                // not in the (cached) statistics yet
                Err(e) if e.is_not_found() => observation(TriggerState::InProgress),
                Err(_) => None,
            }
        }
        Err(flink::Error::OperationFailed { cause, .. }) => observation(TriggerState::Failed {
            cause: cause.to_string(),
        }),
        Err(e) if e.is_not_found() => observation(TriggerState::Unknown),
        Err(_) => None,
    }
}
