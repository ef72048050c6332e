//! `apply_outcome`: folds the result of one action into the status. Pure.

use api::{
    FlinkDeploymentStatus, FlinkJobState, JobManagerDeploymentStatus, ReconciliationState,
    ResourceLifecycleState, TaskManagerInfo,
};

use super::SAVEPOINT_FAILED;
use super::snapshots::{CHECKPOINT_FAILED, clear_pending};
use crate::action::{Action, Event, EventReason, Outcome};
use crate::lifecycle::lifecycle_state;
use crate::snapshot::SnapshotKind;
use crate::snapshot::decide::same_path;

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
        Outcome::Failed { message, .. } if snapshot_bookkeeping(action) => {
            failed_bookkeeping(&mut status, action, message, &mut events);
        }
        Outcome::Failed { message, .. } => {
            let (reason, text) = match action {
                Action::StopWithSavepoint(c) | Action::TriggerSavepoint(c) => (
                    EventReason::SavepointError,
                    format!(
                        "{SAVEPOINT_FAILED}could not trigger savepoint {}: {message}",
                        c.trigger_id
                    ),
                ),
                Action::TriggerCheckpoint { trigger_id, .. } => (
                    EventReason::CheckpointError,
                    format!(
                        "{CHECKPOINT_FAILED}could not trigger checkpoint {trigger_id}: {message}"
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
        Action::DisposeSnapshot { path, .. } => {
            // Only now, with its files gone, is the record dropped.
            if let Some(history) = status
                .job_status
                .as_mut()
                .and_then(|j| j.savepoint_info.as_mut())
                .and_then(|s| s.savepoint_history.as_mut())
            {
                history.retain(|sp| !sp.location.as_deref().is_some_and(|l| same_path(l, path)));
            }
            events.push(Event::normal(
                EventReason::Cleanup,
                format!("Disposed savepoint {path} and dropped it from the history"),
            ));
        }
        Action::CreateSnapshotResource(snapshot) => {
            let kind = SnapshotKind::of(snapshot);
            let trigger = crate::snapshot::trigger_type(snapshot);
            let at = crate::snapshot::created_ms(snapshot);
            clear_pending(status, kind, trigger, at);
            if status
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with(CREATE_FAILED))
            {
                status.error = None;
            }
        }
        Action::StopWithSavepoint(_)
        | Action::TriggerSavepoint(_)
        | Action::TriggerCheckpoint { .. }
        | Action::DeleteSnapshotResource { .. }
        | Action::CancelJob { .. }
        | Action::FinishDeletion => {}
    }
}

/// Prefix of `status.error` when a snapshot resource could not be created.
const CREATE_FAILED: &str = "Could not create FlinkStateSnapshot ";

/// Retention and snapshot-resource steps: their failure is reported, retried by the next pass,
/// and never an error of the job.
fn snapshot_bookkeeping(action: &Action) -> bool {
    matches!(
        action,
        Action::DisposeSnapshot { .. }
            | Action::CreateSnapshotResource(_)
            | Action::DeleteSnapshotResource { .. }
    )
}

fn failed_bookkeeping(
    status: &mut FlinkDeploymentStatus,
    action: &Action,
    message: &str,
    events: &mut Vec<Event>,
) {
    match action {
        Action::DisposeSnapshot { path, .. } => events.push(Event::warning(
            EventReason::CleanupFailed,
            format!(
                "Could not dispose savepoint {path}: {message}; it stays in the history and is \
                 retried"
            ),
        )),
        Action::CreateSnapshotResource(snapshot) => {
            let name = snapshot.metadata.name.clone().unwrap_or_default();
            let text = format!("{CREATE_FAILED}{name}: {message}; retried");
            if status.error.as_deref() != Some(text.as_str()) {
                events.push(Event::warning(EventReason::Error, text.clone()));
            }
            status.error = Some(text);
        }
        Action::DeleteSnapshotResource { name } => events.push(Event::warning(
            EventReason::CleanupFailed,
            format!("Could not delete FlinkStateSnapshot {name}: {message}; retried"),
        )),
        _ => {}
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
        Action::TriggerCheckpoint { .. } => "trigger a checkpoint",
        Action::DisposeSnapshot { .. } => "dispose a savepoint",
        Action::CreateSnapshotResource(_) => "create a FlinkStateSnapshot",
        Action::DeleteSnapshotResource { .. } => "delete a FlinkStateSnapshot",
    }
}
