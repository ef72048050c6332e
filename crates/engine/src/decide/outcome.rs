//! `apply_outcome`: folds the result of one action into the status. Pure.

use api::{
    FlinkDeploymentStatus, FlinkJobState, JobManagerDeploymentStatus, ReconciliationState,
    ResourceLifecycleState, TaskManagerInfo,
};

use super::SAVEPOINT_FAILED;
use crate::action::{Action, Event, EventReason, Outcome};
use crate::lifecycle::lifecycle_state;

/// The status after `action` ended with `outcome`, and the events it deserves.
///
/// Only what the action itself proves is recorded; everything else is left to the next
/// observation (a deployed cluster is `DEPLOYING` until its JobManager is seen).
pub fn apply_outcome(
    status: &FlinkDeploymentStatus,
    action: &Action,
    outcome: &Outcome,
    now_ms: i64,
) -> (FlinkDeploymentStatus, Vec<Event>) {
    let mut status = status.clone();
    let mut events = Vec::new();
    let deleting = status.lifecycle_state == Some(ResourceLifecycleState::Deleting);
    match outcome {
        Outcome::Done => done(&mut status, action, now_ms, &mut events),
        Outcome::Failed { message, .. } => {
            let (reason, text) = match action {
                Action::StopWithSavepoint(c) | Action::TriggerSavepoint(c) => (
                    EventReason::SavepointError,
                    format!(
                        "{SAVEPOINT_FAILED}could not trigger savepoint {}: {message}",
                        c.trigger_id
                    ),
                ),
                other => (
                    EventReason::Error,
                    format!("Could not {}: {message}", describe(other)),
                ),
            };
            if status.error.as_deref() != Some(text.as_str()) {
                events.push(Event::warning(reason, text.clone()));
            }
            status.error = Some(text);
        }
    }
    status.lifecycle_state = Some(lifecycle_state(&status, deleting));
    (status, events)
}

fn done(status: &mut FlinkDeploymentStatus, action: &Action, now_ms: i64, events: &mut Vec<Event>) {
    match action {
        Action::Deploy(_) => {
            let recon = status
                .reconciliation_status
                .get_or_insert_with(Default::default);
            // A rollback ends rolled back: `lastStableSpec` runs, not `lastReconciledSpec`.
            recon.state = Some(if recon.state() == ReconciliationState::RollingBack {
                ReconciliationState::RolledBack
            } else {
                ReconciliationState::Deployed
            });
            recon.reconciliation_timestamp = Some(now_ms);
            status.job_manager_deployment_status = Some(JobManagerDeploymentStatus::Deploying);
            let job = status.job_status.get_or_insert_with(Default::default);
            // As the Apache operator: submitted, not yet observed.
            job.state = Some(FlinkJobState::Reconciling);
            job.start_time = None;
            job.update_time = None;
            status.error = None;
        }
        Action::DeleteCluster => {
            status.job_manager_deployment_status = Some(JobManagerDeploymentStatus::Missing);
            status
                .task_manager
                .get_or_insert_with(TaskManagerInfo::default)
                .replicas = Some(0);
        }
        Action::Scale {
            taskmanagers,
            reconciled_spec,
        } => {
            let recon = status
                .reconciliation_status
                .get_or_insert_with(Default::default);
            recon.last_reconciled_spec = Some(reconciled_spec.clone());
            recon.reconciliation_timestamp = Some(now_ms);
            events.push(Event::normal(
                EventReason::Scaling,
                format!("Scaled to {taskmanagers} TaskManagers"),
            ));
        }
        Action::StopWithSavepoint(_)
        | Action::TriggerSavepoint(_)
        | Action::CancelJob { .. }
        | Action::FinishDeletion => {}
    }
}

fn describe(action: &Action) -> &'static str {
    match action {
        Action::Deploy(_) => "deploy the cluster",
        Action::DeleteCluster => "delete the cluster",
        Action::Scale { .. } => "scale the TaskManagers",
        Action::StopWithSavepoint(_) => "stop the job with a savepoint",
        Action::TriggerSavepoint(_) => "trigger a savepoint",
        Action::CancelJob { .. } => "cancel the job",
        Action::FinishDeletion => "finish the deletion",
    }
}
