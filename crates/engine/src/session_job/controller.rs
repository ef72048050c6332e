//! Reconciling `FlinkSessionJob`s: one pass ([`reconcile_session_job`]) and the loop for polled
//! stores ([`run`]), one task per session job, woken by changes of its spec or deletion.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use api::UpgradeMode;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::act::{SessionJobStore, act_session_job};
use super::decide::{SessionJobInput, decide_session_job};
use super::{deployment_key, session_job_key, target_spec};
use crate::act::StoreError;
use crate::backend::{ClusterBackend, ResourceKey};
use crate::controller::{ControllerOptions, PassResult, backoff, now_ms};
use crate::decide::ObserveNeeds;
use crate::observation::{CheckpointRef, ClusterObservation, JobObservation, Observation};
use crate::settings::Settings;

/// A failed pass: the store or the backend could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SessionJobPassError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The backend could not observe the session cluster.
    #[error(transparent)]
    Backend(#[from] crate::BackendError),
}

/// One reconcile pass of one session job: observe → decide → act.
pub async fn reconcile_session_job<B: ClusterBackend, S: SessionJobStore>(
    backend: &B,
    store: &S,
    settings: &Settings,
    key: &ResourceKey,
) -> Result<PassResult, SessionJobPassError> {
    let Some(job) = store.get_session_job(key).await? else {
        return Ok(PassResult::Gone);
    };
    let cluster = deployment_key(&job);
    let deployment = match &cluster {
        Some(c) => store.get_session_deployment(c).await?,
        None => None,
    };
    let observation = match (&cluster, &deployment) {
        (Some(c), Some(_)) => {
            let status = job.status.clone().unwrap_or_default();
            let js = status.job_status.clone().unwrap_or_default();
            let last_state = |s: &api::FlinkSessionJobSpec| {
                s.job
                    .as_ref()
                    .is_some_and(|j| j.upgrade_mode() == UpgradeMode::LastState)
            };
            let needs = ObserveNeeds {
                job_id: js.job_id.clone(),
                trigger_id: js.savepoint_info.and_then(|s| s.trigger_id),
                latest_checkpoint: js.job_id.is_some()
                    && (last_state(&job.spec)
                        || target_spec(&status).is_some_and(|t| last_state(&t))),
                ..ObserveNeeds::default()
            };
            let mut observation = crate::observe::observe(backend, c, &needs).await?;
            if needs.latest_checkpoint
                && let (Some(d), Some(job_id)) = (&deployment, &needs.job_id)
                && let Some(dir) = checkpoint_dir(&job, c, d, settings)
            {
                newest_on_storage(backend, &dir, job_id, &mut observation).await;
            }
            observation
        }
        _ => absent(),
    };
    let trigger_id = flink::TriggerId::generate();
    let decision = decide_session_job(SessionJobInput {
        job: &job,
        deployment: deployment.as_ref(),
        observation: &observation,
        settings,
        now_ms: now_ms(),
        fresh_trigger_id: trigger_id.as_str(),
    });
    for action in &decision.actions {
        tracing::info!(session_job = %key, action = action.name(), "acting");
    }
    let report = act_session_job(backend, store, &job, &decision, settings).await?;
    if report.removed {
        return Ok(PassResult::Gone);
    }
    Ok(PassResult::Requeue(report.requeue_after))
}

/// The checkpoint directory of the job: its own configuration's, else its session cluster's.
fn checkpoint_dir(
    job: &api::FlinkSessionJob,
    cluster: &ResourceKey,
    deployment: &api::FlinkDeployment,
    settings: &Settings,
) -> Option<String> {
    let config = job.spec.flink_config();
    config
        .get("execution.checkpointing.dir")
        .or_else(|| config.get("state.checkpoints.dir"))
        .map(|d| settings.paths.apply(&d))
        .or_else(|| crate::plan_builder::checkpoint_dir(cluster, &deployment.spec, settings))
}

/// Replaces the REST API's newest checkpoint by a newer one on storage: the statistics lag,
/// and a checkpoint completing while the job is cancelled subsumes (deletes) the one before.
async fn newest_on_storage<B: ClusterBackend>(
    backend: &B,
    dir: &str,
    job_id: &str,
    observation: &mut Observation,
) {
    let Some(path) = backend.latest_checkpoint_on_storage(dir, job_id).await else {
        return;
    };
    let id = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(|s| s.strip_prefix("chk-"))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    if observation
        .latest_checkpoint
        .as_ref()
        .is_some_and(|c| c.id >= id)
    {
        return;
    }
    let timestamp_ms = backend.snapshot_time(&path).await.unwrap_or(0);
    observation.latest_checkpoint = Some(CheckpointRef {
        id,
        path,
        timestamp_ms,
        on_storage: Some(true),
    });
}

/// What is observed when the session cluster's `FlinkDeployment` does not exist.
fn absent() -> Observation {
    Observation {
        cluster: ClusterObservation::Absent,
        job: JobObservation::Unknown {
            reason: "the session cluster does not exist".into(),
        },
        trigger: None,
        latest_checkpoint: None,
        failure_cause: None,
        snapshots: Default::default(),
        progress: Default::default(),
    }
}

/// What wakes a session job's task when it changes: its `generation` and deletion.
type Seen = (Option<i64>, bool);

/// Runs the session job controller until `shutdown` resolves.
pub async fn run<B: ClusterBackend, S: SessionJobStore>(
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
                let Ok(revision) = store.session_job_revision().await else {
                    continue;
                };
                if last_revision == Some(revision) {
                    continue;
                }
                let jobs = match store.list_session_jobs().await {
                    Ok(j) => j,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list session jobs");
                        continue;
                    }
                };
                last_revision = Some(revision);
                for job in jobs {
                    let key = session_job_key(&job);
                    let seen = (
                        job.metadata.generation,
                        job.metadata.deletion_timestamp.is_some(),
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
                    tasks.spawn(task(
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

async fn task<B: ClusterBackend, S: SessionJobStore>(
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
        let pass = reconcile_session_job(backend.as_ref(), store.as_ref(), &settings, &key).await;
        let wait = match pass {
            Ok(PassResult::Gone) => break,
            Ok(PassResult::Requeue(after)) => {
                failures = 0;
                after
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = backoff(&options, failures);
                tracing::warn!(session_job = %key, error = %e, retry_in = ?wait, "reconcile failed");
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
