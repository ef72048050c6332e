//! `observe`: what is, read from the backend and the JobManager's REST API, as a plain
//! [`Observation`]. Nothing is guessed: whatever could not be read this pass is `Unknown`/`None`.

use api::FlinkJobState;
use flink::{FlinkClient, JobId, OperationStatus, TriggerId};

use crate::backend::{BackendError, ClusterBackend, ResourceKey};
use crate::decide::ObserveNeeds;
use crate::observation::{
    CheckpointRef, ClusterObservation, JobInfo, JobObservation, Observation, Progress,
    TriggerObservation, TriggerState,
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
        snapshots: Default::default(),
        progress: Progress::default(),
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
            if let Some(trigger) = &needs.checkpoint_trigger_id {
                obs.snapshots.checkpoint_trigger =
                    crate::snapshot::observe::checkpoint_trigger(client, job, trigger).await;
            }
            if info.state == FlinkJobState::Failed {
                obs.failure_cause = client
                    .job_exceptions(job, Some(1))
                    .await
                    .ok()
                    .and_then(|e| e.root_cause)
                    .map(|c| c.root_cause.unwrap_or(c.message));
            }
        } else if obs.job == JobObservation::NotFound {
            let unknown = |t: &String| TriggerObservation {
                trigger_id: t.clone(),
                state: TriggerState::Unknown,
            };
            obs.trigger = needs.trigger_id.as_ref().map(unknown);
            obs.snapshots.checkpoint_trigger = needs.checkpoint_trigger_id.as_ref().map(unknown);
        }
    }
    if needs.session_cluster && matches!(cluster, ClusterObservation::Running { .. }) {
        obs.job = session_rest(backend, key).await;
    }
    if let (Some(client), Some(job), JobObservation::Found(_)) = (&client, &job_id, &obs.job)
        && needs.job_progress
    {
        obs.progress.restarts = restarts(client, job).await;
    }
    // Recovery needs the newest state only when the job is in trouble: failed, restarting,
    // or its JobManager gone.
    let in_trouble = !matches!(
        &obs.job,
        JobObservation::Found(JobInfo { state: FlinkJobState::Running, all_tasks_running, .. })
            if *all_tasks_running != Some(false)
    );
    let want_latest = needs.latest_checkpoint || (needs.recovery_state && in_trouble);
    if want_latest || needs.job_progress {
        checkpoints(
            backend,
            client.as_ref(),
            &job_id,
            needs,
            want_latest,
            &mut obs,
        )
        .await;
    }
    Ok(obs)
}

/// Restarts of the job: Flink's `numRestarts` metric (`fullRestarts` before Flink 1.13), as the
/// Apache operator's health check reads it. Flink refreshes job metrics every few seconds
/// (`metrics.fetcher.update-interval`), so the count may lag.
async fn restarts(client: &FlinkClient, job: &JobId) -> Option<u64> {
    let metrics = client
        .job_metrics(job, &["numRestarts", "fullRestarts"])
        .await
        .ok()?;
    let value = metrics.f64("numRestarts").or(metrics.f64("fullRestarts"))?;
    (value >= 0.0).then_some(value as u64)
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
    let (name, start, update, tasks) = match details {
        Ok(d) => {
            let update = d
                .timestamps
                .get(state.as_str())
                .copied()
                .filter(|t| *t > 0)
                .unwrap_or(d.now.max(d.start_time));
            let tasks = all_tasks_running(&d);
            (d.name, d.start_time, update, tasks)
        }
        Err(_) => (String::new(), 0, 0, None),
    };
    JobObservation::Found(JobInfo {
        id: job.as_str().to_string(),
        name,
        state,
        start_time_ms: start,
        update_time_ms: update,
        all_tasks_running: tasks,
    })
}

/// Whether every subtask of every vertex runs or has finished; `None` for details without
/// vertices.
fn all_tasks_running(details: &flink::JobDetails) -> Option<bool> {
    if details.vertices.is_empty() {
        return None;
    }
    Some(details.vertices.iter().all(|v| {
        let count = |state: &str| {
            v.tasks
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(state))
                .map(|(_, n)| *n)
                .sum::<u32>()
        };
        v.parallelism > 0 && count("RUNNING") + count("FINISHED") >= v.parallelism
    }))
}

pub(crate) async fn observe_trigger(
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

/// The newest completed checkpoint, the checkpoint counters and a checkpoint in progress: from
/// the REST API (the newest confirmed on storage where the backend can look), or, when the
/// JobManager cannot be asked, the newest checkpoint on storage.
async fn checkpoints<B: ClusterBackend>(
    backend: &B,
    client: Option<&FlinkClient>,
    job_id: &Option<JobId>,
    needs: &ObserveNeeds,
    want_latest: bool,
    obs: &mut Observation,
) {
    let Some(job) = job_id.as_ref() else {
        return;
    };
    if let Some(client) = client
        && let Ok(stats) = client.checkpoints(job).await
    {
        obs.progress.checkpoint_lookup_complete = true;
        obs.progress.completed_checkpoints = Some(stats.counts.completed);
        obs.progress.pending_checkpoint_ms = stats
            .history
            .iter()
            .filter(|c| c.status == "IN_PROGRESS")
            .map(|c| c.trigger_timestamp)
            .max();
        if !want_latest {
            return;
        }
        let Some(summary) = stats.latest.completed else {
            return;
        };
        let Some(path) = summary.external_path else {
            return;
        };
        let on_storage = backend.snapshot_exists(&path).await;
        obs.latest_checkpoint = Some(CheckpointRef {
            id: summary.id,
            path,
            timestamp_ms: summary.latest_ack_timestamp,
            on_storage,
        });
        return;
    }
    if !want_latest {
        return;
    }
    let Some(dir) = needs.checkpoint_dir.as_deref() else {
        return;
    };
    // Whether this backend can look at the storage at all (a local disk, not s3:// from
    // outside the cluster): only then is "no checkpoint found" the truth.
    obs.progress.checkpoint_lookup_complete = backend.snapshot_exists(dir).await.is_some();
    let Some(path) = backend
        .latest_checkpoint_on_storage(dir, job.as_str())
        .await
    else {
        return;
    };
    let id = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(|s| s.strip_prefix("chk-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let timestamp_ms = backend.snapshot_time(&path).await.unwrap_or(0);
    obs.latest_checkpoint = Some(CheckpointRef {
        id,
        path,
        timestamp_ms,
        on_storage: Some(true),
    });
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
