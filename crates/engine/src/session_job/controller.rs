//! Reconciling `FlinkSessionJob`s: one pass ([`reconcile_session_job`]) and the loop for polled
//! stores ([`run`], see [`crate::polled`]).

use std::future::Future;
use std::sync::Arc;

use api::UpgradeMode;

use super::act::{SessionJobStore, act_session_job};
use super::decide::{SessionJobInput, decide_session_job};
use super::{deployment_key, session_job_key, target_spec};
use crate::act::StoreError;
use crate::backend::{ClusterBackend, ResourceKey};
use crate::controller::{ControllerOptions, PassResult, now_ms};
use crate::decide::ObserveNeeds;
use crate::observation::{CheckpointRef, ClusterObservation, JobObservation, Observation};
use crate::polled::{self, PolledKind, Seen};
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
        (Some(c), Some(d)) => {
            let status = job.status.clone().unwrap_or_default();
            let js = status.job_status.clone().unwrap_or_default();
            let target = target_spec(&status);
            let mode_is = |s: &api::FlinkSessionJobSpec, m: fn(UpgradeMode) -> bool| {
                s.job.as_ref().is_some_and(|j| m(j.upgrade_mode()))
            };
            let either = |m: fn(UpgradeMode) -> bool| {
                js.job_id.is_some()
                    && (mode_is(&job.spec, m) || target.as_ref().is_some_and(|t| mode_is(t, m)))
            };
            let needs = ObserveNeeds {
                job_id: js.job_id.clone(),
                trigger_id: js.savepoint_info.and_then(|s| s.trigger_id),
                latest_checkpoint: either(|m| m == UpgradeMode::LastState),
                // A failed or lost job is resubmitted from its newest state (`recover`).
                recovery_state: either(|m| m != UpgradeMode::Stateless),
                checkpoint_dir: checkpoint_dir(&job, c, d, settings),
                ..ObserveNeeds::default()
            };
            let mut observation = crate::observe::observe(backend, c, &needs).await?;
            let in_trouble = !matches!(
                &observation.job,
                JobObservation::Found(info) if info.state == api::FlinkJobState::Running
            );
            if (needs.latest_checkpoint || (needs.recovery_state && in_trouble))
                && let (Some(job_id), Some(dir)) = (&needs.job_id, &needs.checkpoint_dir)
            {
                newest_on_storage(backend, dir, job_id, &mut observation).await;
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

/// The session jobs of a store, for the polling loop.
struct SessionJobs<B, S> {
    backend: Arc<B>,
    store: Arc<S>,
    settings: Arc<Settings>,
}

impl<B: ClusterBackend, S: SessionJobStore> PolledKind for SessionJobs<B, S> {
    type Error = SessionJobPassError;
    const NAME: &'static str = "FlinkSessionJob";

    async fn revision(&self) -> Result<u64, StoreError> {
        self.store.session_job_revision().await
    }

    async fn list(&self) -> Result<Vec<(ResourceKey, Seen)>, StoreError> {
        let all = self.store.list_session_jobs().await?;
        Ok(all
            .iter()
            .map(|j| {
                let seen = (
                    j.metadata.generation,
                    j.metadata.deletion_timestamp.is_some(),
                );
                (session_job_key(j), seen)
            })
            .collect())
    }

    async fn pass(&self, key: &ResourceKey) -> Result<PassResult, SessionJobPassError> {
        reconcile_session_job(
            self.backend.as_ref(),
            self.store.as_ref(),
            &self.settings,
            key,
        )
        .await
    }
}

/// Runs the session job controller until `shutdown` resolves.
pub async fn run<B: ClusterBackend, S: SessionJobStore>(
    backend: Arc<B>,
    store: Arc<S>,
    settings: Arc<Settings>,
    options: ControllerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let kind = SessionJobs {
        backend,
        store,
        settings,
    };
    polled::drive(Arc::new(kind), options, shutdown).await;
}
