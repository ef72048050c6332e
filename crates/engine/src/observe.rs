//! `observe`: what is, read from the backend and the JobManager's REST API, as a plain
//! [`Observation`]. Nothing is guessed: whatever could not be read this pass is `Unknown`/`None`.

use api::FlinkJobState;
use flink::{FlinkClient, JobId, OperationStatus, TriggerId};

use crate::backend::{BackendError, ClusterBackend, ResourceKey};
use crate::decide::ObserveNeeds;
use crate::observation::{
    CheckpointRef, ClusterObservation, JobInfo, JobObservation, Observation, TriggerObservation,
    TriggerState,
};

/// Observes one resource. Fails only when the backend itself cannot say what runs (then the
/// pass is retried with backoff); REST failures become `Unknown` parts of the observation.
pub async fn observe<B: ClusterBackend>(
    backend: &B,
    key: &ResourceKey,
    needs: &ObserveNeeds,
) -> Result<Observation, BackendError> {
    let cluster = backend.observe(key).await?;
    let mut obs = Observation {
        cluster: cluster.clone(),
        job: JobObservation::Unknown {
            reason: "the JobManager is not running".into(),
        },
        trigger: None,
        latest_checkpoint: None,
        failure_cause: None,
    };
    let job_id = needs
        .job_id
        .as_deref()
        .and_then(|s| s.parse::<JobId>().ok());
    let client = match (&cluster, &job_id) {
        (ClusterObservation::Running { .. }, Some(_)) => backend.flink_client(key).ok(),
        _ => None,
    };
    if let (Some(client), Some(job)) = (&client, &job_id) {
        obs.job = observe_job(client, job).await;
        if let JobObservation::Found(info) = &obs.job {
            if let Some(trigger) = &needs.trigger_id {
                obs.trigger = observe_trigger(client, job, trigger).await;
            }
            if info.state == FlinkJobState::Failed {
                obs.failure_cause = client
                    .job_exceptions(job, Some(1))
                    .await
                    .ok()
                    .and_then(|e| e.root_cause)
                    .map(|c| c.root_cause.unwrap_or(c.message));
            }
        } else if let (JobObservation::NotFound, Some(trigger)) = (&obs.job, &needs.trigger_id) {
            obs.trigger = Some(TriggerObservation {
                trigger_id: trigger.clone(),
                state: TriggerState::Unknown,
            });
        }
    }
    if needs.session_cluster && matches!(cluster, ClusterObservation::Running { .. }) {
        obs.job = session_rest(backend, key).await;
    }
    if needs.latest_checkpoint {
        obs.latest_checkpoint = latest_checkpoint(backend, client.as_ref(), &job_id, needs).await;
    }
    Ok(obs)
}

async fn observe_job(client: &FlinkClient, job: &JobId) -> JobObservation {
    // The state endpoint is fresh; details (name, times) come from a cache that may lag.
    let (state, details) = futures::join!(client.job_state(job), client.job(job));
    let state = match state {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return JobObservation::NotFound,
        Err(e) => {
            return JobObservation::Unknown {
                reason: e.to_string(),
            };
        }
    };
    let Some(state) = FlinkJobState::ALL
        .iter()
        .copied()
        .find(|s| s.as_str() == state.as_str())
    else {
        return JobObservation::Unknown {
            reason: format!(
                "the job is in state {} that flinkpilot does not know",
                state.as_str()
            ),
        };
    };
    let (name, start, update) = match details {
        Ok(d) => {
            let update = d
                .timestamps
                .get(state.as_str())
                .copied()
                .filter(|t| *t > 0)
                .unwrap_or(d.now.max(d.start_time));
            (d.name, d.start_time, update)
        }
        Err(_) => (String::new(), 0, 0),
    };
    JobObservation::Found(JobInfo {
        id: job.as_str().to_string(),
        name,
        state,
        start_time_ms: start,
        update_time_ms: update,
    })
}

async fn observe_trigger(
    client: &FlinkClient,
    job: &JobId,
    trigger: &str,
) -> Option<TriggerObservation> {
    let Ok(id) = trigger.parse::<TriggerId>() else {
        return Some(TriggerObservation {
            trigger_id: trigger.to_string(),
            state: TriggerState::Unknown,
        });
    };
    let state = match client.savepoint_status(job, &id).await {
        Ok(OperationStatus::InProgress) => TriggerState::InProgress,
        Ok(OperationStatus::Completed(location)) => TriggerState::Completed {
            location: Some(location),
        },
        Err(flink::Error::OperationFailed { cause, .. }) => TriggerState::Failed {
            cause: cause.to_string(),
        },
        Err(e) if e.is_not_found() => TriggerState::Unknown,
        Err(_) => return None,
    };
    Some(TriggerObservation {
        trigger_id: trigger.to_string(),
        state,
    })
}

/// The newest completed checkpoint: from the REST API (confirmed on storage where the backend
/// can look), or, when the JobManager cannot be asked, the newest one on storage.
async fn latest_checkpoint<B: ClusterBackend>(
    backend: &B,
    client: Option<&FlinkClient>,
    job_id: &Option<JobId>,
    needs: &ObserveNeeds,
) -> Option<CheckpointRef> {
    let job = job_id.as_ref()?;
    if let Some(client) = client {
        match client.latest_completed_checkpoint(job).await {
            Ok(Some(summary)) => {
                let path = summary.external_path?;
                let on_storage = backend.snapshot_exists(&path).await;
                return Some(CheckpointRef {
                    id: summary.id,
                    path,
                    timestamp_ms: summary.latest_ack_timestamp,
                    on_storage,
                });
            }
            Ok(None) => return None,
            Err(_) => {}
        }
    }
    let dir = needs.checkpoint_dir.as_deref()?;
    let path = backend
        .latest_checkpoint_on_storage(dir, job.as_str())
        .await?;
    let id = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(|s| s.strip_prefix("chk-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Some(CheckpointRef {
        id,
        path,
        timestamp_ms: 0,
        on_storage: Some(true),
    })
}

/// Whether a session cluster's REST API answers: `NotFound` (it answers; there is no job of its
/// own to report) or `Unknown` with the reason.
async fn session_rest<B: ClusterBackend>(backend: &B, key: &ResourceKey) -> JobObservation {
    let answer = match backend.flink_client(key) {
        Ok(client) => client.overview().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match answer {
        Ok(_) => JobObservation::NotFound,
        Err(reason) => JobObservation::Unknown { reason },
    }
}
