//! `decide_session_job`: the next status, actions and events of one `FlinkSessionJob`. Pure:
//! `now_ms` and the fresh trigger id are inputs.
//!
//! Phases are derived as for application deployments (`docs/engine.md` §3 and §8): no target
//! → New; `UPGRADING` with a running target → Submitting; `UPGRADING` with a suspended target →
//! Stopping; `DEPLOYED` suspended → Suspended; `DEPLOYED` running → Running.

use std::time::Duration;

use api::reconciled::{ReconciledSpec, ReconciliationMetadata};
use api::{
    FlinkDeployment, FlinkJobState, FlinkSessionJob, FlinkSessionJobSpec, FlinkSessionJobStatus,
    JobManagerDeploymentStatus, JobState, JobStatus, ReconciliationState, ReconciliationStatus,
    Savepoint, SavepointFormatType, SnapshotTriggerType, UpgradeMode,
};

use super::{SessionJobAction, SubmitPlan, job_id_for, session_job_key};
use crate::action::{Event, EventReason, SavepointCall, SavepointFormat};
use crate::lifecycle::session_job_lifecycle_state;
use crate::observation::{ClusterObservation, JobInfo, JobObservation, Observation, TriggerState};
use crate::plan_builder;
use crate::settings::Settings;

/// Everything `decide_session_job` reads.
#[derive(Clone, Copy, Debug)]
pub struct SessionJobInput<'a> {
    /// The session job.
    pub job: &'a FlinkSessionJob,
    /// The `FlinkDeployment` it names, `None` when it does not exist.
    pub deployment: Option<&'a FlinkDeployment>,
    /// The session cluster and the job in it (job, trigger, latest checkpoint).
    pub observation: &'a Observation,
    /// Engine settings.
    pub settings: &'a Settings,
    /// Now, epoch milliseconds.
    pub now_ms: i64,
    /// A fresh trigger id (32 hex digits), used when this pass triggers a savepoint.
    pub fresh_trigger_id: &'a str,
}

/// What `decide_session_job` wants.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionJobDecision {
    /// The new status (persisted before the actions).
    pub status: FlinkSessionJobStatus,
    /// Actions, in order (at most one ends the job).
    pub actions: Vec<SessionJobAction>,
    /// Events for people.
    pub events: Vec<Event>,
    /// When to look again.
    pub requeue_after: Duration,
}

/// Prefix of `status.error` for an invalid spec (cleared once it is valid).
pub const INVALID: &str = "Invalid spec, nothing was changed: ";
/// Prefix of `status.error` while the session cluster cannot take the job (cleared once it can).
pub const WAITING: &str = "Waiting for the session cluster: ";
/// Prefix of `status.error` when stopping the job would lose its state.
pub const BLOCKED: &str = "Cannot stop the job safely yet: ";
/// Prefix of `status.error` for a failed savepoint.
pub const SAVEPOINT_FAILED: &str = "Savepoint failed: ";
/// Prefix of `status.error` for a failed submission (cleared by the next one that works).
pub const SUBMIT_FAILED: &str = "Could not submit the job: ";
/// Prefix of `status.error` for a failed job.
pub const JOB_FAILED: &str = "Job failed: ";
/// Prefix of `status.error` for a job the session cluster lost.
pub const JOB_MISSING: &str = "Job missing: ";

/// The operator option that takes a savepoint before a deleted job is cancelled.
const SAVEPOINT_ON_DELETION: &str = "kubernetes.operator.job.savepoint-on-deletion";

struct Cx<'a> {
    input: SessionJobInput<'a>,
    desired: &'a FlinkSessionJobSpec,
    obs: &'a Observation,
    settings: &'a Settings,
    status: FlinkSessionJobStatus,
    actions: Vec<SessionJobAction>,
    events: Vec<Event>,
    requeue: Duration,
    error_raised: bool,
}

/// Decides the next step for one session job.
pub fn decide_session_job(input: SessionJobInput<'_>) -> SessionJobDecision {
    let mut cx = Cx {
        input,
        desired: &input.job.spec,
        obs: input.observation,
        settings: input.settings,
        status: input.job.status.clone().unwrap_or_default(),
        actions: Vec::new(),
        events: Vec::new(),
        requeue: input.settings.observe_interval,
        error_raised: false,
    };
    fold_job(&mut cx);
    let deleting = input.job.metadata.deletion_timestamp.is_some();
    if deleting {
        delete(&mut cx);
    } else {
        let recon = cx.status.reconciliation_status.clone().unwrap_or_default();
        match recon.last_reconciled::<FlinkSessionJobSpec>() {
            Err(e) => cx.set_error(EventReason::Error, e.to_string()),
            Ok(None) => new(&mut cx),
            Ok(Some(target)) => match (recon.state(), suspended(&target.spec)) {
                (ReconciliationState::Upgrading, false) => submitting(&mut cx, &target),
                (ReconciliationState::Upgrading, true) => stopping(&mut cx, &target),
                (_, true) => suspended_phase(&mut cx, &target),
                (_, false) => running(&mut cx, &target),
            },
        }
    }
    cx.status.lifecycle_state = Some(session_job_lifecycle_state(&cx.status, deleting));
    SessionJobDecision {
        status: cx.status,
        actions: cx.actions,
        events: cx.events,
        requeue_after: cx.requeue,
    }
}

fn suspended(spec: &FlinkSessionJobSpec) -> bool {
    spec.job
        .as_ref()
        .is_some_and(|j| j.state() == JobState::Suspended)
}

fn mode_of(spec: &FlinkSessionJobSpec) -> UpgradeMode {
    spec.job
        .as_ref()
        .map(api::JobSpec::upgrade_mode)
        .unwrap_or_default()
}

fn with_state(
    spec: &FlinkSessionJobSpec,
    state: JobState,
    mode: Option<UpgradeMode>,
) -> FlinkSessionJobSpec {
    let mut s = spec.clone();
    if let Some(job) = s.job.as_mut() {
        job.state = Some(state);
        if let Some(mode) = mode {
            job.upgrade_mode = Some(mode);
        }
    }
    s
}

fn is_first(target: &ReconciledSpec<FlinkSessionJobSpec>) -> bool {
    target.meta.as_ref().is_some_and(|m| m.first_deployment)
}

/// Folds what the JobManager reports about the recorded job into `jobStatus`.
fn fold_job(cx: &mut Cx<'_>) {
    let Some(info) = cx.observed_job().cloned() else {
        return;
    };
    let js = cx.job_status();
    if js.state != Some(info.state) {
        cx.events.push(Event::normal(
            EventReason::JobStatusChanged,
            format!("Job {} is {}", info.id, info.state.as_str()),
        ));
    }
    let js = cx.job_status();
    js.state = Some(info.state);
    if !info.name.is_empty() {
        js.job_name = Some(info.name.clone());
    }
    if info.start_time_ms > 0 {
        js.start_time = Some(info.start_time_ms.to_string());
    }
    if info.update_time_ms > 0 {
        js.update_time = Some(info.update_time_ms.to_string());
    }
}

impl Cx<'_> {
    fn recon(&mut self) -> &mut ReconciliationStatus {
        self.status
            .reconciliation_status
            .get_or_insert_with(ReconciliationStatus::default)
    }

    fn job_status(&mut self) -> &mut JobStatus {
        self.status
            .job_status
            .get_or_insert_with(JobStatus::default)
    }

    fn job_id(&self) -> Option<String> {
        self.status.job_status.as_ref()?.job_id.clone()
    }

    fn restore_path(&self) -> Option<String> {
        self.status
            .job_status
            .as_ref()?
            .upgrade_savepoint_path
            .clone()
    }

    fn trigger_id(&self) -> Option<String> {
        self.status
            .job_status
            .as_ref()?
            .savepoint_info
            .as_ref()?
            .trigger_id
            .clone()
    }

    /// The recorded job, as the JobManager reports it.
    fn observed_job(&self) -> Option<&JobInfo> {
        match &self.obs.job {
            JobObservation::Found(info) if Some(&info.id) == self.job_id().as_ref() => Some(info),
            _ => None,
        }
    }

    /// The recorded job has ended or is not in the cluster (nor is the cluster).
    fn job_ended(&self) -> bool {
        if let Some(info) = self.observed_job() {
            return info.state.is_terminal();
        }
        self.job_id().is_none()
            || self.obs.job == JobObservation::NotFound
            || matches!(self.obs.cluster, ClusterObservation::Absent)
    }

    fn set_error(&mut self, reason: EventReason, message: String) {
        if self.status.error.as_deref() != Some(message.as_str()) {
            self.events.push(Event::warning(reason, message.clone()));
        }
        self.status.error = Some(message);
        self.error_raised = true;
        self.requeue = self.requeue.max(self.settings.retry_interval);
    }

    fn clear_error_of(&mut self, prefixes: &[&str]) {
        let matches = self
            .status
            .error
            .as_deref()
            .is_some_and(|e| prefixes.iter().any(|p| e.starts_with(p)));
        if matches && !self.error_raised {
            self.status.error = None;
        }
    }

    fn soon(&mut self) {
        self.requeue = self.settings.transition_interval;
    }

    fn set_target(&mut self, spec: &FlinkSessionJobSpec, first: bool) -> bool {
        let generation = self.input.job.metadata.generation;
        let meta = ReconciliationMetadata::new(generation, first);
        match self.recon().set_last_reconciled(spec, &meta) {
            Ok(()) => {
                self.status.observed_generation = generation;
                true
            }
            Err(e) => {
                self.set_error(EventReason::Error, e.to_string());
                false
            }
        }
    }

    /// Validates the desired spec against its session cluster; records the problems.
    fn validate(&mut self) -> bool {
        let mut problems: Vec<String> =
            api::validate::session_job(self.input.job, self.input.deployment)
                .iter()
                .map(ToString::to_string)
                .collect();
        if let Some(uri) = self.desired.job.as_ref().and_then(|j| j.jar_uri.as_deref())
            && let Err(e) = jar_path(uri, self.settings)
        {
            problems.push(e);
        }
        if problems.is_empty() {
            self.clear_error_of(&[INVALID]);
            return true;
        }
        let message = format!("{INVALID}{}", problems.join("; "));
        self.set_error(EventReason::ValidationError, message);
        self.requeue = self.settings.observe_interval;
        false
    }

    /// Whether the session cluster takes jobs; otherwise records why not.
    fn cluster_ready(&mut self) -> bool {
        let name = self.desired.deployment_name.clone().unwrap_or_default();
        let why = match self.input.deployment {
            None => Some(format!(
                "FlinkDeployment {name} named by spec.deploymentName does not exist; the job is \
                 submitted once it does"
            )),
            Some(d) if d.metadata.deletion_timestamp.is_some() => {
                Some(format!("FlinkDeployment {name} is being deleted"))
            }
            Some(d) => {
                let status = d.status.as_ref();
                let jm = status.and_then(|s| s.job_manager_deployment_status);
                let upgrading = status
                    .and_then(|s| s.reconciliation_status.as_ref())
                    .is_some_and(|r| r.state() == ReconciliationState::Upgrading);
                let running = matches!(self.obs.cluster, ClusterObservation::Running { .. });
                (jm != Some(JobManagerDeploymentStatus::Ready) || upgrading || !running).then(|| {
                    format!(
                        "FlinkDeployment {name} is not ready (its JobManager is {}); the job is \
                         submitted once it is READY",
                        jm.map_or("not deployed", JobManagerDeploymentStatus::as_str)
                    )
                })
            }
        };
        match why {
            None => {
                self.clear_error_of(&[WAITING]);
                true
            }
            Some(why) => {
                let message = format!("{WAITING}{why}");
                if self.status.error.as_deref() != Some(message.as_str()) {
                    self.events
                        .push(Event::normal(EventReason::Submit, message.clone()));
                }
                self.status.error = Some(message);
                self.error_raised = true;
                self.requeue = self.settings.observe_interval;
                false
            }
        }
    }

    /// A boolean operator option from the job's configuration, else its session cluster's.
    fn option(&self, key: &str) -> bool {
        let from = |c: &api::FlinkConfiguration| c.get_bool(key).ok().flatten();
        from(self.desired.flink_config())
            .or_else(|| {
                self.input
                    .deployment
                    .and_then(|d| from(d.spec.flink_config()))
            })
            .unwrap_or(false)
    }

    fn savepoint_call(&self, job_id: String) -> SavepointCall {
        let config = self.desired.flink_config();
        let dir = config
            .get("execution.checkpointing.savepoint-dir")
            .or_else(|| config.get("state.savepoints.dir"))
            .map(|d| self.settings.paths.apply(&d));
        let native = config
            .get("kubernetes.operator.savepoint.format.type")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("NATIVE"));
        SavepointCall {
            job_id,
            trigger_id: self.input.fresh_trigger_id.to_string(),
            target_dir: dir,
            format: if native {
                SavepointFormat::Native
            } else {
                SavepointFormat::Canonical
            },
            drain: false,
        }
    }

    /// Records a savepoint trigger (write-ahead) and stops the job with it.
    fn stop_with_savepoint(&mut self, job_id: String, trigger: SnapshotTriggerType) {
        let call = self.savepoint_call(job_id);
        let now = self.input.now_ms;
        let info = self
            .job_status()
            .savepoint_info
            .get_or_insert_with(Default::default);
        info.trigger_id = Some(call.trigger_id.clone());
        info.trigger_timestamp = Some(now);
        info.trigger_type = Some(trigger);
        info.format_type = Some(format_type(call.format));
        self.actions.push(SessionJobAction::StopWithSavepoint(call));
        self.soon();
    }

    /// Folds the recorded savepoint trigger: completed → path recorded; failed → error.
    /// Returns `true` while it is still in flight.
    fn fold_trigger(&mut self) -> bool {
        let Some(trigger) = self.trigger_id() else {
            return false;
        };
        let seen = self
            .obs
            .trigger
            .as_ref()
            .filter(|t| t.trigger_id == trigger)
            .map(|t| t.state.clone());
        match seen {
            Some(TriggerState::Completed { location }) => {
                let now = self.input.now_ms;
                let info = self
                    .job_status()
                    .savepoint_info
                    .get_or_insert_with(Default::default);
                let savepoint = Savepoint {
                    time_stamp: Some(now),
                    location: location.clone(),
                    trigger_type: info.trigger_type,
                    format_type: info.format_type,
                    trigger_nonce: None,
                };
                info.trigger_id = None;
                info.trigger_timestamp = None;
                info.last_savepoint = Some(savepoint.clone());
                info.savepoint_history
                    .get_or_insert_with(Vec::new)
                    .push(savepoint);
                self.job_status().upgrade_savepoint_path = location.clone();
                self.clear_error_of(&[SAVEPOINT_FAILED, BLOCKED]);
                self.events.push(Event::normal(
                    EventReason::SavepointCreated,
                    format!("Savepoint completed at {}", location.unwrap_or_default()),
                ));
                false
            }
            Some(TriggerState::Failed { cause }) => {
                let info = self
                    .job_status()
                    .savepoint_info
                    .get_or_insert_with(Default::default);
                info.trigger_id = None;
                info.trigger_timestamp = None;
                self.set_error(
                    EventReason::SavepointError,
                    format!("{SAVEPOINT_FAILED}{cause}"),
                );
                false
            }
            Some(TriggerState::Unknown) if self.job_ended() => {
                // The JobManager forgot the trigger and the job is gone: nothing to wait for.
                let info = self
                    .job_status()
                    .savepoint_info
                    .get_or_insert_with(Default::default);
                info.trigger_id = None;
                info.trigger_timestamp = None;
                false
            }
            Some(TriggerState::Unknown) => {
                // Sent again under the same id: Flink treats it as the same operation.
                if let Some(id) = self.job_id() {
                    let mut call = self.savepoint_call(id);
                    call.trigger_id = trigger;
                    self.actions.push(SessionJobAction::StopWithSavepoint(call));
                }
                self.soon();
                true
            }
            Some(TriggerState::InProgress) | None => {
                self.soon();
                true
            }
        }
    }

    /// Records `spec` running as the target, a new job id and the restore path (write-ahead),
    /// then submits.
    fn submit(&mut self, spec: &FlinkSessionJobSpec, restore: Option<String>, first: bool) {
        let generation = self.input.job.metadata.generation.unwrap_or(0);
        let uid = self
            .input
            .job
            .metadata
            .uid
            .clone()
            .unwrap_or_else(|| session_job_key(self.input.job).to_string());
        let job_id = job_id_for(&uid, generation);
        let plan = match plan(spec, &job_id, restore.clone(), self.settings) {
            Ok(p) => p,
            Err(e) => {
                self.set_error(EventReason::ValidationError, format!("{INVALID}{e}"));
                return;
            }
        };
        if !self.set_target(&with_state(spec, JobState::Running, None), first) {
            return;
        }
        self.recon().state = Some(ReconciliationState::Upgrading);
        let js = self.job_status();
        if js.job_id.as_deref() != Some(job_id.as_str()) {
            js.job_id = Some(job_id.clone());
            js.state = None;
            js.start_time = None;
            js.update_time = None;
        }
        js.upgrade_savepoint_path = restore.clone();
        let from = restore.map_or_else(String::new, |p| format!(" from {p}"));
        let cluster = spec.deployment_name.clone().unwrap_or_default();
        self.events.push(Event::normal(
            EventReason::Submit,
            format!("Submitting job {job_id} to session cluster {cluster}{from}"),
        ));
        self.actions.push(SessionJobAction::Submit(Box::new(plan)));
        self.soon();
    }
}

fn format_type(format: SavepointFormat) -> SavepointFormatType {
    match format {
        SavepointFormat::Native => SavepointFormatType::Native,
        _ => SavepointFormatType::Canonical,
    }
}

/// The local path of a `local://` or `file://` jar URI, after the path map.
pub fn jar_path(uri: &str, settings: &Settings) -> Result<String, String> {
    let mapped = settings.paths.apply(uri);
    let path = mapped
        .strip_prefix("local://")
        .or_else(|| mapped.strip_prefix("file://"))
        .or_else(|| mapped.strip_prefix("file:"))
        .filter(|p| p.starts_with('/'));
    path.map(str::to_string).ok_or_else(|| {
        format!(
            "spec.job.jarURI: `{uri}` cannot be submitted to a session cluster here; use a \
             local:// or file:// URI of an absolute path to the jar"
        )
    })
}

/// What `Submit` runs for `spec`.
fn plan(
    spec: &FlinkSessionJobSpec,
    job_id: &str,
    restore: Option<String>,
    settings: &Settings,
) -> Result<SubmitPlan, String> {
    let job = spec.job.clone().unwrap_or_default();
    let uri = job.jar_uri.clone().unwrap_or_default();
    let mut config: std::collections::BTreeMap<String, String> = spec
        .flink_config()
        .flatten()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("kubernetes.operator."))
        .map(|(k, v)| (k, settings.paths.apply(&v)))
        .collect();
    // A last-state upgrade restores from the checkpoint the cancel leaves behind.
    if job.upgrade_mode() == UpgradeMode::LastState {
        config.insert(
            plan_builder::RETENTION_KEY.into(),
            plan_builder::RETAIN_ON_CANCELLATION.into(),
        );
    }
    Ok(SubmitPlan {
        job_id: job_id.to_string(),
        jar_path: jar_path(&uri, settings)?,
        jar_uri: uri,
        entry_class: job.entry_class.clone(),
        args: job.args().to_vec(),
        parallelism: u32::try_from(job.parallelism()).ok().filter(|p| *p > 0),
        restore_path: restore.map(|p| settings.paths.apply(&p)),
        allow_non_restored_state: job.allow_non_restored_state(),
        config,
    })
}

/// No target yet: validate, wait for the cluster, record the submission, submit.
fn new(cx: &mut Cx<'_>) {
    if !cx.validate() {
        return;
    }
    let desired = cx.desired.clone();
    if suspended(&desired) {
        if cx.set_target(&desired, true) {
            cx.recon().state = Some(ReconciliationState::Deployed);
            cx.recon().mark_reconciled_spec_stable();
        }
        return;
    }
    if !cx.cluster_ready() {
        return;
    }
    let restore = desired
        .job
        .as_ref()
        .and_then(|j| j.initial_savepoint_path.clone());
    cx.submit(&desired, restore, true);
}

/// `UPGRADING`, target running: the submission is recorded. Done once the job is found;
/// submitted (again) while it is not.
fn submitting(cx: &mut Cx<'_>, target: &ReconciledSpec<FlinkSessionJobSpec>) {
    if cx.observed_job().is_some() {
        cx.recon().state = Some(ReconciliationState::Deployed);
        cx.clear_error_of(&[SUBMIT_FAILED, WAITING, JOB_MISSING, INVALID]);
        cx.soon();
        return;
    }
    let changed = api::diff(&target.spec, cx.desired).kind != api::ChangeKind::Ignore;
    let restore = cx.restore_path();
    if changed && cx.validate() {
        let desired = cx.desired.clone();
        if !suspended(&desired) {
            cx.events.push(Event::normal(
                EventReason::SpecChanged,
                "Spec changed while submitting; submitting the new spec instead".to_string(),
            ));
            if cx.cluster_ready() {
                cx.submit(&desired, restore, is_first(target));
            }
            return;
        }
    }
    if !cx.cluster_ready() {
        return;
    }
    match &cx.obs.job {
        JobObservation::NotFound => {
            let job_id = cx.job_id().unwrap_or_default();
            match plan(&target.spec, &job_id, restore, cx.settings) {
                Ok(p) => {
                    cx.actions.push(SessionJobAction::Submit(Box::new(p)));
                    cx.soon();
                }
                Err(e) => cx.set_error(EventReason::ValidationError, format!("{INVALID}{e}")),
            }
        }
        _ => cx.soon(),
    }
}

/// `DEPLOYED`, target running: observe; a change stops the job first.
fn running(cx: &mut Cx<'_>, target: &ReconciledSpec<FlinkSessionJobSpec>) {
    let diff = api::diff(&target.spec, cx.desired);
    if diff.kind == api::ChangeKind::Ignore {
        if !diff.changes.is_empty() && cx.validate() {
            let desired = cx.desired.clone();
            cx.set_target(&desired, is_first(target));
        }
        steady(cx);
        return;
    }
    if !cx.validate() {
        steady(cx);
        return;
    }
    // A savepointRedeployNonce change discards the job's state: stopped without one, then
    // resubmitted from initialSavepointPath (recorded as the restore path).
    let redeploy = diff.kind == api::ChangeKind::SavepointRedeploy;
    let mode = if redeploy {
        UpgradeMode::Stateless
    } else {
        mode_of(cx.desired)
    };
    let what = if suspended(cx.desired) {
        "suspending".to_string()
    } else {
        format!("{diff}; stopping the job to resubmit it")
    };
    cx.events.push(Event::normal(
        EventReason::SpecChanged,
        format!("Spec changed: {what} (upgradeMode {mode})"),
    ));
    let stop_target = with_state(cx.desired, JobState::Suspended, Some(mode));
    if !cx.set_target(&stop_target, false) {
        return;
    }
    cx.recon().state = Some(ReconciliationState::Upgrading);
    cx.job_status().upgrade_savepoint_path = if redeploy {
        cx.desired
            .job
            .as_ref()
            .and_then(|j| j.initial_savepoint_path.clone())
    } else {
        None
    };
    stop_step(cx, mode);
}

/// The job runs as recorded: stable once RUNNING; a failed or lost job is reported.
fn steady(cx: &mut Cx<'_>) {
    if let Some(info) = cx.observed_job().cloned() {
        match info.state {
            FlinkJobState::Running => {
                cx.clear_error_of(&[JOB_FAILED, JOB_MISSING, SUBMIT_FAILED, WAITING]);
                if info.all_tasks_running != Some(false) {
                    let recon = cx.recon();
                    if !recon.is_last_reconciled_spec_stable() {
                        recon.mark_reconciled_spec_stable();
                    }
                } else {
                    cx.soon();
                }
            }
            FlinkJobState::Failed => {
                let cause = cx
                    .obs
                    .failure_cause
                    .clone()
                    .unwrap_or_else(|| "unknown".into());
                cx.set_error(EventReason::Error, format!("{JOB_FAILED}{cause}"));
            }
            s if !s.is_terminal() => cx.soon(),
            _ => {}
        }
        return;
    }
    if cx.obs.job == JobObservation::NotFound
        && matches!(cx.obs.cluster, ClusterObservation::Running { .. })
    {
        let id = cx.job_id().unwrap_or_default();
        let cluster = cx.desired.deployment_name.clone().unwrap_or_default();
        cx.set_error(
            EventReason::Missing,
            format!(
                "{JOB_MISSING}job {id} is not in session cluster {cluster} any more (was the \
                 cluster redeployed?); change spec.restartNonce to submit it again"
            ),
        );
    }
}

/// `UPGRADING`, target suspended: stop the job per the recorded mode, then suspend or resubmit.
fn stopping(cx: &mut Cx<'_>, target: &ReconciledSpec<FlinkSessionJobSpec>) {
    stop_step(cx, mode_of(&target.spec));
}

/// One step of stopping the job in `mode`; once it ended with its state recorded, the next
/// step (suspended, or the resubmission) is taken in the same pass.
fn stop_step(cx: &mut Cx<'_>, mode: UpgradeMode) {
    // A failed savepoint is retried after `retry_interval`.
    if cx.fold_trigger() || cx.error_raised {
        return;
    }
    let ended = cx.job_ended();
    let job_id = cx.job_id().unwrap_or_default();
    match mode {
        UpgradeMode::Stateless => {}
        UpgradeMode::Savepoint => {
            if cx.restore_path().is_none() {
                if !ended
                    && cx
                        .observed_job()
                        .is_some_and(|j| j.state == FlinkJobState::Running)
                {
                    cx.stop_with_savepoint(job_id, SnapshotTriggerType::Upgrade);
                    return;
                }
                if !ended {
                    cx.soon();
                    return;
                }
                let why = "the job ended without a savepoint; set upgradeMode: stateless to \
                           continue without its state";
                cx.set_error(EventReason::UpgradeBlocked, format!("{BLOCKED}{why}"));
                return;
            }
        }
        UpgradeMode::LastState => {
            let newest = cx
                .obs
                .latest_checkpoint
                .clone()
                .filter(|c| c.on_storage != Some(false));
            let recorded = cx.restore_path();
            if let Some(c) = newest
                && recorded.as_deref() != Some(c.path.as_str())
                && recorded
                    .as_deref()
                    .and_then(checkpoint_id)
                    .is_none_or(|r| c.id > r)
            {
                cx.job_status().upgrade_savepoint_path = Some(c.path.clone());
                cx.clear_error_of(&[BLOCKED]);
            }
            if cx.restore_path().is_none() {
                if ended || cx.observed_job().is_some() {
                    let why = "no completed checkpoint of the job was found; wait for one, or \
                               set upgradeMode: savepoint or stateless";
                    cx.set_error(EventReason::UpgradeBlocked, format!("{BLOCKED}{why}"));
                } else {
                    cx.soon();
                }
                return;
            }
        }
    }
    if !ended {
        let cancelling = cx
            .observed_job()
            .is_some_and(|j| j.state == FlinkJobState::Cancelling);
        if !cancelling && cx.observed_job().is_some() {
            cx.actions.push(SessionJobAction::CancelJob { job_id });
        }
        cx.soon();
        return;
    }
    after_stop(cx);
}

/// The checkpoint id of a `…/chk-N` path.
fn checkpoint_id(path: &str) -> Option<u64> {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()?
        .strip_prefix("chk-")?
        .parse()
        .ok()
}

/// The job has ended with its state recorded: suspended, or resubmitted from that state.
fn after_stop(cx: &mut Cx<'_>) {
    let desired = cx.desired.clone();
    if suspended(&desired) {
        if cx.set_target(&desired, false) {
            cx.recon().state = Some(ReconciliationState::Deployed);
            cx.recon().mark_reconciled_spec_stable();
            cx.clear_error_of(&[BLOCKED, SAVEPOINT_FAILED]);
            cx.events.push(Event::normal(
                EventReason::Suspended,
                "Job suspended".to_string(),
            ));
        }
        return;
    }
    if !cx.validate() || !cx.cluster_ready() {
        return;
    }
    // Stateless stops record nothing (a savepoint redeploy records initialSavepointPath).
    let restore = cx.restore_path();
    cx.clear_error_of(&[BLOCKED, SAVEPOINT_FAILED]);
    cx.submit(&desired, restore, false);
}

/// `DEPLOYED`, target suspended: nothing runs; resumed from the recorded state.
fn suspended_phase(cx: &mut Cx<'_>, target: &ReconciledSpec<FlinkSessionJobSpec>) {
    let desired = cx.desired.clone();
    if suspended(&desired) {
        if api::diff(&target.spec, &desired).changes.is_empty() || !cx.validate() {
            return;
        }
        cx.set_target(&desired, is_first(target));
        return;
    }
    if !cx.validate() || !cx.cluster_ready() {
        return;
    }
    let restore = if is_first(target) {
        desired
            .job
            .as_ref()
            .and_then(|j| j.initial_savepoint_path.clone())
    } else if mode_of(&desired) == UpgradeMode::Stateless {
        None
    } else {
        cx.restore_path()
    };
    cx.submit(&desired, restore, is_first(target));
}

/// Deleting: the job is cancelled (or stopped with a savepoint with `savepoint-on-deletion`),
/// then the finalizer goes. A job whose cluster is gone has nothing left to stop.
fn delete(cx: &mut Cx<'_>) {
    // A failed savepoint is retried after `retry_interval`.
    if cx.fold_trigger() || cx.error_raised {
        return;
    }
    let unreachable = matches!(cx.obs.job, JobObservation::Unknown { .. })
        && matches!(cx.obs.cluster, ClusterObservation::Running { .. });
    if cx.job_ended() || (cx.input.deployment.is_none() && !unreachable) {
        cx.actions.push(SessionJobAction::FinishDeletion);
        return;
    }
    let Some(info) = cx.observed_job().cloned() else {
        // The JobManager runs but does not answer: ask again.
        cx.soon();
        return;
    };
    if info.state == FlinkJobState::Cancelling {
        cx.soon();
        return;
    }
    if cx.option(SAVEPOINT_ON_DELETION) && info.state == FlinkJobState::Running {
        cx.stop_with_savepoint(info.id, SnapshotTriggerType::Upgrade);
        return;
    }
    cx.actions
        .push(SessionJobAction::CancelJob { job_id: info.id });
    cx.soon();
}
