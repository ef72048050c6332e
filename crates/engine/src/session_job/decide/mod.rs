//! `decide_session_job`: the next status, actions and events of one `FlinkSessionJob`. Pure:
//! `now_ms` and the fresh trigger id are inputs.
//!
//! Phases are derived as for application deployments (`docs/engine.md` §3 and §8): no target
//! → New; `UPGRADING` with a running target → Submitting; `UPGRADING` with a suspended target →
//! Stopping; `DEPLOYED` suspended → Suspended; `DEPLOYED` running → Running.

use std::time::Duration;

mod cx;
mod recover;
mod stop;

use api::reconciled::ReconciledSpec;
use api::{
    FlinkDeployment, FlinkJobState, FlinkSessionJob, FlinkSessionJobSpec, FlinkSessionJobStatus,
    JobState, ReconciliationState, UpgradeMode,
};

pub use cx::jar_path;
use cx::{fold_job, plan};
use stop::{delete, stop_step, stopping};

use super::SessionJobAction;
use crate::action::{Event, EventReason};
use crate::lifecycle::session_job_lifecycle_state;
use crate::observation::{ClusterObservation, JobObservation, Observation};
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
/// Prefix of `status.error` when a failed or lost job cannot be resubmitted safely.
pub const RECOVERY: &str = crate::decide::recovery::RECOVERY_BLOCKED;

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
    // Waiting for the session cluster is not a failure: the lifecycle reads it as no error.
    let mut view = cx.status.clone();
    if view
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with(WAITING))
    {
        view.error = None;
    }
    cx.status.lifecycle_state = Some(session_job_lifecycle_state(&view, deleting));
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
        cx.clear_error_of(&[SUBMIT_FAILED, WAITING, INVALID, RECOVERY]);
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
        let valid = diff.changes.is_empty() || cx.validate();
        if valid && !diff.changes.is_empty() {
            let desired = cx.desired.clone();
            cx.set_target(&desired, is_first(target));
        }
        steady(cx, valid);
        return;
    }
    if !cx.validate() {
        steady(cx, false);
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

/// The job runs as recorded: stable once RUNNING. A FAILED job, or one the session cluster
/// lost, is resubmitted from its newest state (`recover`) when the options say so and the spec
/// is valid (`recover`), else reported.
fn steady(cx: &mut Cx<'_>, recover: bool) {
    if let Some(info) = cx.observed_job().cloned() {
        match info.state {
            FlinkJobState::Running => {
                cx.clear_error_of(&[JOB_FAILED, JOB_MISSING, SUBMIT_FAILED, WAITING, RECOVERY]);
                if info.all_tasks_running != Some(false) {
                    let recon = cx.recon();
                    if !recon.is_last_reconciled_spec_stable() {
                        recon.mark_reconciled_spec_stable();
                    }
                } else {
                    cx.soon();
                }
            }
            FlinkJobState::Failed => recover::failed(cx, recover),
            s if !s.is_terminal() => cx.soon(),
            _ => {}
        }
        return;
    }
    // A job seen ending for good is not resubmitted when Flink forgets it (its job store
    // expires finished jobs, a restarted JobManager knows none).
    let ended = cx
        .status
        .job_status
        .as_ref()
        .and_then(|j| j.state)
        .is_some_and(|s| {
            matches!(
                s,
                FlinkJobState::Finished | FlinkJobState::Canceled | FlinkJobState::Failed
            )
        });
    match (&cx.obs.job, &cx.obs.cluster) {
        (JobObservation::NotFound, ClusterObservation::Running { .. }) if !ended => {
            recover::lost(cx, recover);
        }
        // The session cluster is gone or restarting: say so while waiting for it.
        (_, ClusterObservation::Absent | ClusterObservation::Failed { .. }) => {
            cx.cluster_ready();
        }
        _ => {}
    }
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
