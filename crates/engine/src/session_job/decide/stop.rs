//! Stopping a job — for an upgrade, a suspend or the deletion of its resource — with its
//! state recorded first, per upgrade mode.

use api::reconciled::ReconciledSpec;
use api::{
    FlinkJobState, FlinkSessionJobSpec, ReconciliationState, SnapshotTriggerType, UpgradeMode,
};

use super::{BLOCKED, Cx, SAVEPOINT_FAILED, SAVEPOINT_ON_DELETION, mode_of, suspended};
use crate::action::{Event, EventReason};
use crate::observation::{ClusterObservation, JobObservation};
use crate::session_job::SessionJobAction;

/// `UPGRADING`, target suspended: stop the job per the recorded mode, then suspend or resubmit.
pub(super) fn stopping(cx: &mut Cx<'_>, target: &ReconciledSpec<FlinkSessionJobSpec>) {
    stop_step(cx, mode_of(&target.spec));
}

/// One step of stopping the job in `mode`; once it ended with its state recorded, the next
/// step (suspended, or the resubmission) is taken in the same pass.
pub(super) fn stop_step(cx: &mut Cx<'_>, mode: UpgradeMode) {
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

/// Deleting: the job is cancelled (or stopped with a savepoint with `savepoint-on-deletion`),
/// then the finalizer goes. A job whose cluster is gone has nothing left to stop.
pub(super) fn delete(cx: &mut Cx<'_>) {
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
    if cx.flag(SAVEPOINT_ON_DELETION, false) && info.state == FlinkJobState::Running {
        cx.stop_with_savepoint(info.id, SnapshotTriggerType::Upgrade);
        return;
    }
    cx.actions
        .push(SessionJobAction::CancelJob { job_id: info.id });
    cx.soon();
}
