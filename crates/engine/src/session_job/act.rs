//! `act_session_job`: the finalizer first, then the decided status (write-ahead: the job id and
//! restore path before the jar runs, a trigger id before it is sent), then the actions against
//! the session cluster, then what they changed.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use api::{FlinkDeployment, FlinkSessionJob, FlinkSessionJobStatus};
use flink::{JarId, JobId, RunJarRequest};

use super::decide::{SUBMIT_FAILED, SessionJobDecision};
use super::{
    SESSION_JOB_FINALIZER, SessionJobAction, SubmitPlan, deployment_key, fetch, session_job_key,
    without_credentials,
};
use crate::act::{StoreError, flink_result, savepoint};
use crate::action::{Event, EventReason, Outcome};
use crate::backend::{ClusterBackend, ResourceKey};
use crate::failpoint::{self, Point};
use crate::settings::Settings;

/// Where session jobs live: the local file store or the Kubernetes API.
pub trait SessionJobStore: Send + Sync + 'static {
    /// A number that changes whenever anything in the store changes (for polling).
    fn session_job_revision(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Every `FlinkSessionJob`.
    fn list_session_jobs(
        &self,
    ) -> impl Future<Output = Result<Vec<FlinkSessionJob>, StoreError>> + Send;
    /// One `FlinkSessionJob`.
    fn get_session_job(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<Option<FlinkSessionJob>, StoreError>> + Send;
    /// The session `FlinkDeployment` a job names.
    fn get_session_deployment(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<Option<FlinkDeployment>, StoreError>> + Send;
    /// Persists the session job's status; durable when it returns.
    fn write_session_job_status(
        &self,
        key: &ResourceKey,
        status: &FlinkSessionJobStatus,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records events about the session job (best effort).
    fn record_session_job_events(
        &self,
        key: &ResourceKey,
        events: &[Event],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds [`SESSION_JOB_FINALIZER`].
    fn add_session_job_finalizer(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes [`SESSION_JOB_FINALIZER`]; a session job being deleted then disappears.
    fn remove_session_job_finalizer(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What one `act_session_job` did.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionJobReport {
    /// The status as persisted.
    pub status: FlinkSessionJobStatus,
    /// The session job is gone (its deletion finished).
    pub removed: bool,
    /// When to look again.
    pub requeue_after: Duration,
}

/// Carries out `decision` for `job`.
pub async fn act_session_job<B: ClusterBackend, S: SessionJobStore>(
    backend: &B,
    store: &S,
    job: &FlinkSessionJob,
    decision: &SessionJobDecision,
    settings: &Settings,
) -> Result<SessionJobReport, StoreError> {
    let key = session_job_key(job);
    let deleting = job.metadata.deletion_timestamp.is_some();
    let has_finalizer = job
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == SESSION_JOB_FINALIZER));
    if !deleting && !has_finalizer {
        store.add_session_job_finalizer(&key).await?;
    }
    let current = job.status.clone().unwrap_or_default();
    if decision.status != current {
        store
            .write_session_job_status(&key, &decision.status)
            .await?;
    }
    record(store, &key, &decision.events).await;
    let phase = decision
        .actions
        .iter()
        .any(|a| matches!(a, SessionJobAction::Submit(_)))
        .then_some("submit");
    failpoint::check_phase(Point::AfterStatusWrite, phase);

    let cluster = deployment_key(job);
    let mut status = decision.status.clone();
    let mut events = Vec::new();
    let mut requeue = decision.requeue_after;
    for action in &decision.actions {
        let outcome = run(backend, store, &key, cluster.as_ref(), action).await;
        if let Outcome::Failed { message, .. } = &outcome {
            tracing::warn!(session_job = %key, action = action.name(), %message, "action failed");
        }
        if matches!(action, SessionJobAction::FinishDeletion) && outcome == Outcome::Done {
            return Ok(SessionJobReport {
                status,
                removed: true,
                requeue_after: requeue,
            });
        }
        let (next, new_events, retry) = apply_session_job_outcome(&status, action, &outcome);
        status = next;
        events.extend(new_events);
        if retry {
            requeue = requeue.max(settings.retry_interval);
        }
        if outcome != Outcome::Done {
            break;
        }
    }
    failpoint::check_phase(Point::AfterAction, phase);
    if status != decision.status {
        store.write_session_job_status(&key, &status).await?;
    }
    record(store, &key, &events).await;
    Ok(SessionJobReport {
        status,
        removed: false,
        requeue_after: requeue,
    })
}

async fn record<S: SessionJobStore>(store: &S, key: &ResourceKey, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    if let Err(e) = store.record_session_job_events(key, events).await {
        tracing::warn!(session_job = %key, error = %e, "could not record events");
    }
}

async fn run<B: ClusterBackend, S: SessionJobStore>(
    backend: &B,
    store: &S,
    key: &ResourceKey,
    cluster: Option<&ResourceKey>,
    action: &SessionJobAction,
) -> Outcome {
    if let SessionJobAction::FinishDeletion = action {
        return match store.remove_session_job_finalizer(key).await {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed {
                message: e.message,
                transient: e.transient,
            },
        };
    }
    let Some(cluster) = cluster else {
        return Outcome::Failed {
            message: format!("{key} names no session cluster (spec.deploymentName)"),
            transient: false,
        };
    };
    match action {
        SessionJobAction::Submit(plan) => submit(backend, cluster, plan).await,
        SessionJobAction::StopWithSavepoint(call) => savepoint(backend, cluster, call, true).await,
        SessionJobAction::CancelJob { job_id } => {
            let result = async {
                let client = backend.flink_client(cluster).map_err(|e| e.to_string())?;
                let job: JobId = job_id
                    .parse()
                    .map_err(|e: flink::ids::InvalidId| e.to_string())?;
                client.cancel_job(&job).await.map_err(|e| e.to_string())
            };
            flink_result(result.await)
        }
        SessionJobAction::FinishDeletion => Outcome::Done,
    }
}

/// The status after `action` ended with `outcome`, its events, and whether to wait
/// `retry_interval` before the next pass. Pure.
pub fn apply_session_job_outcome(
    status: &FlinkSessionJobStatus,
    action: &SessionJobAction,
    outcome: &Outcome,
) -> (FlinkSessionJobStatus, Vec<Event>, bool) {
    let mut status = status.clone();
    let mut events = Vec::new();
    let Outcome::Failed { message, .. } = outcome else {
        if matches!(action, SessionJobAction::Submit(_))
            && status
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with(SUBMIT_FAILED))
        {
            status.error = None;
        }
        return (status, events, false);
    };
    let text = match action {
        SessionJobAction::Submit(_) => format!("{SUBMIT_FAILED}{message}"),
        SessionJobAction::StopWithSavepoint(_) => {
            format!("Could not stop the job with a savepoint: {message}")
        }
        SessionJobAction::CancelJob { .. } => format!("Could not cancel the job: {message}"),
        SessionJobAction::FinishDeletion => message.clone(),
    };
    if status.error.as_deref() != Some(text.as_str()) {
        events.push(Event::warning(EventReason::Error, text.clone()));
    }
    status.error = Some(text);
    (status, events, true)
}

/// Submits the plan's job to the session cluster `cluster`: nothing when a job of that id is
/// there already; else upload the jar, run it under the recorded id, and delete the uploaded
/// jar again. Flink refusing the id as a duplicate means an earlier run got through.
async fn submit<B: ClusterBackend>(
    backend: &B,
    cluster: &ResourceKey,
    plan: &SubmitPlan,
) -> Outcome {
    let client = match backend.flink_client(cluster) {
        Ok(c) => c,
        Err(e) => return failed(e.to_string(), true),
    };
    let job_id: JobId = match plan.job_id.parse() {
        Ok(id) => id,
        Err(e) => return failed(format!("job id {}: {e}", plan.job_id), false),
    };
    match client.job_state(&job_id).await {
        Ok(_) => return Outcome::Done,
        Err(e) if e.is_not_found() => {}
        Err(e) => return failed(e.to_string(), true),
    }
    let fetched = if fetch::is_remote(&plan.jar_path) {
        let dir = std::env::temp_dir();
        match fetch::download(&plan.jar_path, &dir, &plan.job_id, fetch::MAX_JAR_BYTES).await {
            Ok(jar) => Some(jar),
            Err(e) => return failed(e.message, e.transient),
        }
    } else {
        None
    };
    let path = fetched
        .as_ref()
        .map_or_else(|| Path::new(&plan.jar_path), fetch::FetchedJar::path);
    if !path.is_file() {
        return failed(
            format!(
                "spec.job.jarURI: no jar at {} (from `{}`); put the jar there or fix the URI",
                path.display(),
                plan.jar_uri
            ),
            false,
        );
    }
    let jar = match client.upload_jar(path).await {
        Ok(jar) => jar,
        Err(e) => return failed(format!("uploading {}: {e}", path.display()), true),
    };
    let request = RunJarRequest {
        entry_class: plan.entry_class.clone(),
        program_args: plan.args.clone(),
        parallelism: plan.parallelism,
        savepoint_path: plan.restore_path.clone(),
        allow_non_restored_state: plan
            .restore_path
            .as_ref()
            .map(|_| plan.allow_non_restored_state),
        job_id: Some(job_id),
        claim_mode: None,
        flink_configuration: plan.config.clone(),
    };
    let result = client.run_jar(&jar, &request).await;
    delete_jar(&client, &jar).await;
    match result {
        Ok(_) => Outcome::Done,
        Err(e) if is_duplicate(&e.to_string()) => Outcome::Done,
        // The job may have been submitted although the answer was lost: the next pass looks
        // for it by id before submitting again.
        Err(e) => failed(
            format!("running {}: {e}", without_credentials(&plan.jar_uri)),
            !e.is_not_found(),
        ),
    }
}

async fn delete_jar(client: &flink::FlinkClient, jar: &JarId) {
    if let Err(e) = client.delete_jar(jar).await {
        tracing::warn!(jar = %jar, error = %e, "could not delete the uploaded jar");
    }
}

/// Flink's answer to a job id it has seen already.
fn is_duplicate(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("duplicatejobsubmission") || m.contains("already been submitted")
}

fn failed(message: String, transient: bool) -> Outcome {
    Outcome::Failed { message, transient }
}
