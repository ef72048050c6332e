//! Deleting a resource: optionally a final savepoint (`kubernetes.operator.job.savepoint-on-
//! deletion`), then the cluster, then the resource itself (finalizer / file).

use api::{FlinkJobState, SnapshotTriggerType};

use super::Cx;
use super::observe_status::{record_trigger, savepoint_call};
use crate::action::{Action, Event, EventReason};
use crate::observation::{ClusterObservation, JobObservation};

/// Operator option: take a savepoint (stop-with-savepoint) before deleting.
pub const SAVEPOINT_ON_DELETION: &str = "kubernetes.operator.job.savepoint-on-deletion";
/// Operator option: drain the pipeline when stopping for deletion.
pub const DRAIN_ON_DELETION: &str = "kubernetes.operator.job.drain-on-savepoint-deletion";

/// One step of deleting the resource.
pub(super) fn step(cx: &mut Cx<'_>) {
    if matches!(cx.obs.cluster, ClusterObservation::Absent) {
        cx.act(Action::FinishDeletion);
        return;
    }
    if cx.operator_flag(SAVEPOINT_ON_DELETION) && !savepoint_done(cx) {
        return;
    }
    cx.events.push(Event::normal(
        EventReason::Cleanup,
        "Deleting the cluster".to_string(),
    ));
    cx.act(Action::DeleteCluster);
    cx.soon();
}

/// Takes the final savepoint if it is still to be taken; `true` once deletion may go on.
fn savepoint_done(cx: &mut Cx<'_>) -> bool {
    let cluster_up = matches!(cx.obs.cluster, ClusterObservation::Running { .. });
    if cx.trigger_pending() {
        if cluster_up {
            cx.soon();
            return false;
        }
        // The JobManager that ran it is gone; nothing more can be saved.
        return true;
    }
    let job = match &cx.obs.job {
        JobObservation::Found(info) => info.clone(),
        JobObservation::Unknown { .. } if cluster_up => {
            // The REST API does not answer yet: the job may still run.
            cx.soon();
            return false;
        }
        _ => return true,
    };
    if job.state.is_terminal() {
        return true;
    }
    let completed_now = cx
        .events
        .iter()
        .any(|e| e.reason == EventReason::SavepointCreated);
    if completed_now {
        return true;
    }
    if cx.savepoint_failed {
        // retried after `retry_interval`; set the option to false to delete without one
        return false;
    }
    if job.state != FlinkJobState::Running {
        cx.events.push(Event::warning(
            EventReason::SavepointError,
            format!(
                "No savepoint before deletion: the job is {} and cannot take one",
                job.state
            ),
        ));
        return true;
    }
    let running_spec = super::target_spec(&cx.status).unwrap_or_else(|| cx.desired.clone());
    let drain = cx.operator_flag(DRAIN_ON_DELETION);
    let call = savepoint_call(cx, &running_spec, job.id.clone(), drain);
    record_trigger(cx, &call, SnapshotTriggerType::Upgrade);
    cx.events.push(Event::normal(
        EventReason::Cleanup,
        "Stopping the job with a savepoint before deletion".to_string(),
    ));
    cx.act(Action::StopWithSavepoint(call));
    cx.soon();
    false
}
