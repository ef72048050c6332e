//! Recovery of a session job without anyone asking, as deployments recover (`docs/engine.md`
//! §7, `decide::recovery`):
//! - a job that FAILED, with `kubernetes.operator.job.restart.failed: true`;
//! - a job its session cluster lost — the cluster was redeployed, or its JobManager restarted
//!   without HA — once the cluster is READY again, with
//!   `kubernetes.operator.jm-deployment-recovery.enabled` (default true).
//!
//! The job is resubmitted from the newest state that can be proven (`newest_state_of`: the
//! newest completed checkpoint, on storage when the JobManager no longer knows the job; a
//! savepoint taken while it ran when newer; else the state it started from), written ahead
//! like every submission: target, `UPGRADING`, the next job id and the restore path are
//! recorded before **Submit**. A stateful job for which no state can be proven is not
//! submitted: `error` says why and how to choose.

use api::{FlinkSessionJobSpec, UpgradeMode};

use super::{Cx, JOB_FAILED, JOB_MISSING, mode_of};
use crate::action::{Event, EventReason};
use crate::decide::options::{JM_RECOVERY, JM_RECOVERY_DEPRECATED, RESTART_FAILED};
use crate::decide::recovery::{RECOVERY_BLOCKED, describe, newest_state_of};
use crate::session_job::{SessionJobAction, target_spec};

/// A FAILED job: resubmitted with `job.restart.failed`, else reported. `recover` is false
/// while the desired spec is invalid (the job is then only reported).
pub(super) fn failed(cx: &mut Cx<'_>, recover: bool) {
    let cause = cx
        .obs
        .failure_cause
        .clone()
        .unwrap_or_else(|| "no cause reported".into());
    if recover && cx.flag(RESTART_FAILED, false) {
        // Not into a session cluster that is being replaced.
        if !cx.cluster_ready() {
            return;
        }
        if cause_pending(cx) {
            cx.soon();
            return;
        }
        let id = cx.job_id().unwrap_or_default();
        let why = format!("job {id} failed ({cause}) and {RESTART_FAILED} is true");
        resubmit(cx, EventReason::RestartFailedJob, JOB_FAILED, &why);
        return;
    }
    cx.set_error(EventReason::Error, format!("{JOB_FAILED}{cause}"));
}

/// How long after a job FAILED its cause is waited for before it is resubmitted without one.
const CAUSE_GRACE_MS: i64 = 10_000;

/// Flink reports a job FAILED before its failure is in the exception history (it is archived
/// once the failure's labels are known), so a cause missing right after the failure is
/// waited for, briefly (`CAUSE_GRACE_MS`); the job is resubmitted without one after that.
fn cause_pending(cx: &Cx<'_>) -> bool {
    cx.obs.failure_cause.is_none()
        && cx
            .observed_job()
            .is_some_and(|j| cx.input.now_ms.saturating_sub(j.update_time_ms) < CAUSE_GRACE_MS)
}

/// The recorded job is not in the running session cluster: resubmitted once the cluster is
/// READY (`jm-deployment-recovery.enabled`), else reported.
pub(super) fn lost(cx: &mut Cx<'_>, recover: bool) {
    let id = cx.job_id().unwrap_or_default();
    let cluster = cx.desired.deployment_name.clone().unwrap_or_default();
    let why = format!(
        "job {id} is not in session cluster {cluster} any more (the cluster was redeployed or \
         its JobManager restarted)"
    );
    if !recover || !jm_recovery_enabled(cx) {
        let because = if recover {
            format!("{JM_RECOVERY} is false")
        } else {
            "the spec is invalid".to_string()
        };
        cx.set_error(
            EventReason::Missing,
            format!(
                "{JOB_MISSING}{why}; it is not resubmitted because {because}. Change \
                 spec.restartNonce to submit it again (from its newest checkpoint in last-state \
                 mode, empty in stateless mode)"
            ),
        );
        return;
    }
    if !cx.cluster_ready() {
        return;
    }
    resubmit(cx, EventReason::RecoverDeployment, JOB_MISSING, &why);
}

/// `jm-deployment-recovery.enabled`, also under its deprecated key (default true).
fn jm_recovery_enabled(cx: &Cx<'_>) -> bool {
    if cx.option(JM_RECOVERY).is_some() {
        return cx.flag(JM_RECOVERY, true);
    }
    cx.flag(JM_RECOVERY_DEPRECATED, true)
}

/// Records the resubmission of the running spec from the job's newest state and submits it;
/// `error` (with `prefix`, cleared once the new job runs) and an event say what, why and from
/// which snapshot. Nothing is submitted when a stateful job's state cannot be proven.
fn resubmit(cx: &mut Cx<'_>, reason: EventReason, prefix: &str, why: &str) {
    let spec: FlinkSessionJobSpec = target_spec(&cx.status).unwrap_or_else(|| cx.desired.clone());
    let mode = mode_of(&spec);
    let old = cx.job_id().unwrap_or_default();
    let state = match newest_state_of(cx.obs, cx.status.job_status.as_ref(), mode, true) {
        Ok(None) if mode != UpgradeMode::Stateless => Err(format!(
            "job {old} completed no checkpoint, took no savepoint and started without state"
        )),
        other => other,
    };
    let state = match state {
        Ok(state) => state,
        Err(e) => {
            cx.set_error(
                reason,
                format!(
                    "{RECOVERY_BLOCKED}{why}, but {e}; nothing was submitted. Set \
                     spec.job.initialSavepointPath and change spec.job.savepointRedeployNonce \
                     to choose the state, or set upgradeMode: stateless to start empty"
                ),
            );
            return;
        }
    };
    let from = describe(&state);
    cx.submit(&spec, state.map(|s| s.path), false);
    if !cx
        .actions
        .iter()
        .any(|a| matches!(a, SessionJobAction::Submit(_)))
    {
        return;
    }
    let new = cx.job_id().unwrap_or_default();
    let message = format!("{why}; resubmitting it as job {new} {from}");
    cx.events.push(Event::warning(reason, message.clone()));
    cx.status.error = Some(format!("{prefix}{message}"));
    cx.error_raised = true;
}
