//! Recovery of a running deployment, without anyone asking: a JobManager that is gone
//! (`jm-deployment-recovery.enabled`), a job that FAILED (`job.restart.failed`), a job the
//! health check finds unhealthy (`cluster.health-check.enabled`), and TaskManagers that died
//! where nothing else restarts them.
//!
//! A restart is written ahead like any deploy: `UPGRADING` (`ROLLING_BACK` when the running
//! spec is a rolled-back one), a new job id, and the state to restore from in
//! `upgradeSavepointPath` — chosen here, before anything is deleted. The deploy in flight then
//! removes what is left of the old cluster (it runs another plan and not the recorded job)
//! and deploys the same spec from exactly that state (see `deploy::in_flight`).
//!
//! Without Flink's HA metadata (which the Apache operator needs for stateful recovery), the
//! state comes from what can be proven on storage: the newest completed checkpoint of the job,
//! a savepoint taken while it ran when that is newer, or else the state it started from.

use api::UpgradeMode;
use api::reconciled::ReconciledSpec;
use api::{
    FlinkDeploymentSpec, FlinkJobState, JobManagerDeploymentStatus, JobStatus, ReconciliationState,
};

use super::options::{RESTART_FAILED, ROLLBACK};
use super::{Cx, deploy, health, rollback, upgrade_mode};
use crate::action::{Action, Event, EventReason};
use crate::observation::{CheckpointRef, ClusterObservation, Observation};
use crate::plan_builder;

/// Prefix of `status.error` when a recovery cannot prove where the job's state is.
pub(crate) const RECOVERY_BLOCKED: &str = "Cannot recover the job safely: ";

/// A snapshot to restore from, and how it was chosen (for events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct State {
    /// Savepoint or checkpoint path.
    pub path: String,
    /// What it is, for people.
    pub what: String,
}

/// The newest state of the current job that can be proven to exist:
/// - its newest completed checkpoint (confirmed on storage where the backend can look);
/// - a savepoint taken while it ran (`lastSavepoint` newer than the job's start), when there
///   is no checkpoint or the savepoint completed after it (the checkpoint wins when their
///   times cannot be compared);
/// - else, with `include_start`, the state the job started from (`upgradeSavepointPath`), as
///   long as the checkpoint lookup was complete (nothing newer can exist unseen).
///
/// `Ok(None)` means the job provably never had state (stateless mode, or it started empty and
/// never completed a checkpoint); `Err` says why nothing can be proven.
pub(crate) fn newest_state(
    cx: &Cx<'_>,
    mode: UpgradeMode,
    include_start: bool,
) -> Result<Option<State>, String> {
    newest_state_of(cx.obs, cx.status.job_status.as_ref(), mode, include_start)
}

/// [`newest_state`] of the job recorded in `job` (`status.jobStatus`), with `obs` observed:
/// shared by deployments and session jobs.
pub(crate) fn newest_state_of(
    obs: &Observation,
    job: Option<&JobStatus>,
    mode: UpgradeMode,
    include_start: bool,
) -> Result<Option<State>, String> {
    if mode == UpgradeMode::Stateless {
        return Ok(None);
    }
    let restore = job.and_then(|j| j.upgrade_savepoint_path.clone());
    let savepoint = job.and_then(savepoint_of_this_job);
    let job = job.and_then(|j| j.job_id.clone()).unwrap_or_default();
    let checkpoint = obs
        .latest_checkpoint
        .clone()
        .filter(|c| c.on_storage != Some(false));
    let as_checkpoint = |c: &CheckpointRef| State {
        path: c.path.clone(),
        what: format!("checkpoint {} ({}), the newest of job {job}", c.id, c.path),
    };
    let as_savepoint = |(path, _): &(String, i64)| State {
        path: path.clone(),
        what: format!("savepoint {path}, taken while job {job} ran"),
    };
    match (&checkpoint, &savepoint) {
        (Some(c), Some(s)) => {
            // The savepoint's time is when its completion was observed (a little after it
            // completed); a checkpoint of unknown time is preferred, as Flink itself would.
            let checkpoint_newer = c.timestamp_ms <= 0 || c.timestamp_ms >= s.1;
            Ok(Some(if checkpoint_newer {
                as_checkpoint(c)
            } else {
                as_savepoint(s)
            }))
        }
        (Some(c), None) => Ok(Some(as_checkpoint(c))),
        (None, Some(s)) => Ok(Some(as_savepoint(s))),
        (None, None) if !obs.progress.checkpoint_lookup_complete => Err(format!(
            "the checkpoints of job {job} cannot be listed from here (the JobManager is not \
             answering and the storage is not reachable), so its newest state cannot be proven"
        )),
        (None, None) if !include_start => Err(format!(
            "job {job} completed no checkpoint and took no savepoint"
        )),
        (None, None) => Ok(restore.map(|path| State {
            what: format!(
                "{path}, the state job {job} started from (it completed no checkpoint since)"
            ),
            path,
        })),
    }
}

/// `lastSavepoint` when it was taken while the job recorded in `js` ran: (location, time).
fn savepoint_of_this_job(js: &JobStatus) -> Option<(String, i64)> {
    let start: i64 = js.start_time.as_deref()?.parse().ok()?;
    let last = js.savepoint_info.as_ref()?.last_savepoint.as_ref()?;
    let time = last.time_stamp?;
    let location = last.location.clone()?;
    // A snapshot this job was restored from is not newer than the job.
    (start > 0 && time >= start && js.upgrade_savepoint_path.as_deref() != Some(location.as_str()))
        .then_some((location, time))
}

/// For last-state stops: whether checkpoint `c` is newer than the recorded restore path (a
/// checkpoint with a lower id, or a savepoint not proven newer).
pub(crate) fn checkpoint_is_newer(cx: &Cx<'_>, c: &CheckpointRef, recorded: &str) -> bool {
    if let Some(id) = super::upgrade::checkpoint_id(recorded) {
        return c.id > id;
    }
    match cx
        .status
        .job_status
        .as_ref()
        .and_then(savepoint_of_this_job)
    {
        Some((path, time)) if path == recorded && c.timestamp_ms > 0 => c.timestamp_ms >= time,
        _ => true,
    }
}

/// How `newest_state` reads in an event: "from <what>" or "with empty state …".
pub(crate) fn describe(state: &Option<State>) -> String {
    match state {
        Some(s) => format!("from {}", s.what),
        None => "with empty state (stateless, or it never had a checkpoint or savepoint)".into(),
    }
}

/// Recovery for a deployed, running target whose spec is valid and unchanged. Returns `true`
/// when it took over the pass (a restart or rollback was recorded).
pub(super) fn check(cx: &mut Cx<'_>, target: &ReconciledSpec<FlinkDeploymentSpec>) -> bool {
    if rollback::check(cx) {
        return true;
    }
    let deployed = rollback::deployed_spec(&cx.status).unwrap_or_else(|| target.spec.clone());
    let unhealthy = health::check(cx);
    let recon = cx.status.reconciliation_status.clone().unwrap_or_default();
    // An upgrade that has not become stable is left to the rollback (and its readiness
    // timeout, which a restart would start over).
    let awaiting_rollback = cx.option_bool(ROLLBACK, false)
        && recon.state() == ReconciliationState::Deployed
        && !recon.is_last_reconciled_spec_stable();
    if !awaiting_rollback {
        if let Some(why) = jobmanager_lost(cx) {
            if cx.jm_recovery_enabled() {
                restart(cx, &deployed, EventReason::RecoverDeployment, &why);
                return true;
            }
            if !loss_reported(cx) {
                cx.events.push(Event::warning(
                    EventReason::Missing,
                    format!(
                        "{why}; it is not recovered because {} is false",
                        super::options::JM_RECOVERY
                    ),
                ));
            }
        }
        let failed = cx
            .observed_job()
            .is_some_and(|j| j.state == FlinkJobState::Failed);
        if failed && cx.option_bool(RESTART_FAILED, false) {
            let cause = cx
                .obs
                .failure_cause
                .clone()
                .unwrap_or_else(|| "no cause reported".into());
            let why = format!("The job failed ({cause}) and {RESTART_FAILED} is true");
            restart(cx, &deployed, EventReason::RestartFailedJob, &why);
            return true;
        }
        if let Some(why) = unhealthy {
            let why = format!("The job is unhealthy: {why}");
            restart(cx, &deployed, EventReason::RestartUnhealthyJob, &why);
            return true;
        }
    }
    restore_taskmanagers(cx, &deployed);
    false
}

/// Why the JobManager counts as lost: the cluster is gone, or its JobManager exited after it
/// had been up (one that never came up is a failed deploy, not a loss), or a recovery of it
/// was refused before and is tried again.
pub(super) fn jobmanager_lost(cx: &Cx<'_>) -> Option<String> {
    use JobManagerDeploymentStatus as Jm;
    let before = cx.resource.status.as_ref();
    let previous = before.and_then(|s| s.job_manager_deployment_status);
    let retry = before
        .and_then(|s| s.error.as_deref())
        .is_some_and(|e| e.starts_with(RECOVERY_BLOCKED));
    match &cx.obs.cluster {
        ClusterObservation::Absent => {
            Some("The cluster is gone although the job should run".to_string())
        }
        ClusterObservation::Failed { reason, .. }
            if retry || matches!(previous, Some(Jm::Ready | Jm::DeployedNotReady)) =>
        {
            Some(format!("The JobManager is gone: {reason}"))
        }
        _ => None,
    }
}

/// Whether the loss was seen before (so it is not reported again).
pub(super) fn loss_reported(cx: &Cx<'_>) -> bool {
    use JobManagerDeploymentStatus as Jm;
    cx.resource
        .status
        .as_ref()
        .and_then(|s| s.job_manager_deployment_status)
        .is_some_and(|s| matches!(s, Jm::Missing | Jm::Error))
}

/// Records a restart of `deployed` from the newest state (write-ahead) and takes its first
/// step: delete what is left of the cluster, or deploy at once when nothing is.
fn restart(cx: &mut Cx<'_>, deployed: &FlinkDeploymentSpec, reason: EventReason, why: &str) {
    let mode = upgrade_mode(cx.desired);
    let state = match newest_state(cx, mode, true) {
        Ok(state) => state,
        Err(e) => {
            let mut message = format!(
                "{RECOVERY_BLOCKED}{why}, but {e}; nothing was deleted. Set \
                 spec.job.initialSavepointPath and savepointRedeployNonce to choose the state, \
                 or upgradeMode stateless to start empty"
            );
            // Keep what the JobManager said before it died (reason and log tail).
            if let Some(jm) = cx
                .status
                .error
                .as_deref()
                .filter(|e| e.starts_with(super::JOBMANAGER_FAILED))
            {
                message.push_str(&format!("\n{jm}"));
            }
            cx.set_error(reason, message);
            return;
        }
    };
    let from = describe(&state);
    record_redeploy(cx, state.map(|s| s.path), false);
    if reason == EventReason::RestartUnhealthyJob {
        cx.status.error = Some(why.to_string());
        cx.error_raised = true;
    }
    cx.events.push(Event::warning(
        reason,
        format!("{why}; restarting it {from}"),
    ));
    first_step(cx, deployed);
}

/// The write-ahead record of a redeploy of the running spec (restart or rollback): a new job
/// id and the restore path, `UPGRADING` (or `ROLLING_BACK` when `rolling_back` or the running
/// spec is a rolled-back one); a savepoint in flight is forgotten (its JobManager goes away).
pub(super) fn record_redeploy(cx: &mut Cx<'_>, restore: Option<String>, rolling_back: bool) {
    let recon = cx.recon();
    let rolled_back = recon.state() == ReconciliationState::RolledBack;
    recon.state = Some(if rolling_back || rolled_back {
        ReconciliationState::RollingBack
    } else {
        ReconciliationState::Upgrading
    });
    let job_id = cx.fresh.job_id.clone();
    let js = cx.job_status();
    js.job_id = Some(job_id.clone());
    js.upgrade_savepoint_path = restore.clone();
    if let Some(sp) = js.savepoint_info.as_mut()
        && sp.trigger_id.is_some()
    {
        sp.trigger_id = None;
        sp.trigger_timestamp = None;
        sp.trigger_type = None;
        sp.format_type = None;
    }
    health::forget(cx);
    let from = match &restore {
        Some(path) => format!("restoring state from {path}"),
        None => "with empty state".to_string(),
    };
    cx.events.push(Event::normal(
        EventReason::Submit,
        format!("Deploying job {job_id} {from}"),
    ));
}

/// The first step of a recorded redeploy: delete what is left of the old cluster (the state
/// is recorded), or deploy when nothing is left.
pub(super) fn first_step(cx: &mut Cx<'_>, deployed: &FlinkDeploymentSpec) {
    if matches!(cx.obs.cluster, ClusterObservation::Absent) {
        deploy::deploy_recorded(cx, deployed);
    } else {
        cx.act(Action::DeleteCluster);
        cx.soon();
    }
}

/// TaskManagers that died are started again where the platform does not do it
/// ([`crate::Settings::restart_lost_taskmanagers`]); Flink then restarts the job on them from
/// its latest checkpoint.
pub(super) fn restore_taskmanagers(cx: &mut Cx<'_>, deployed: &FlinkDeploymentSpec) {
    if !cx.settings.restart_lost_taskmanagers {
        return;
    }
    let ClusterObservation::Running { taskmanagers, .. } = cx.obs.cluster else {
        return;
    };
    let wanted = plan_builder::taskmanager_count(deployed);
    if taskmanagers >= wanted {
        return;
    }
    let Some(reconciled) = cx
        .status
        .reconciliation_status
        .as_ref()
        .and_then(|r| r.last_reconciled_spec.clone())
    else {
        return;
    };
    cx.events.push(Event::warning(
        EventReason::RecoverDeployment,
        format!("{taskmanagers} of {wanted} TaskManagers run; starting the missing ones"),
    ));
    cx.act(Action::Scale {
        taskmanagers: wanted,
        reconciled_spec: reconciled,
    });
    cx.soon();
}
