//! Folding an observation into the status (job state, JobManager status, savepoint results),
//! and the steady state of a running deployment: stability, manual savepoints.

use api::reconciled::ReconciledSpec;
use api::{
    FlinkDeploymentSpec, FlinkJobState, JobManagerDeploymentStatus, ReconciliationState, Savepoint,
    SavepointFormatType, SnapshotTriggerType, TaskManagerInfo,
};

use super::{Cx, JOB_FAILED, JOBMANAGER_FAILED, SAVEPOINT_FAILED};
use crate::action::{Action, Event, EventReason, SavepointCall, SavepointFormat};
use crate::observation::{ClusterObservation, JobObservation, TriggerState};
use crate::plan_builder;

/// Longest log excerpt kept in `status.error`.
const MAX_LOG_TAIL: usize = 1500;

/// Folds what was observed into the status. Nothing here acts.
pub(super) fn fold(cx: &mut Cx<'_>) {
    super::snapshots::fold(cx);
    fold_trigger(cx);
    fold_job(cx);
    fold_cluster(cx);
}

fn format_type(format: Option<SavepointFormatType>) -> Option<SavepointFormatType> {
    format.or(Some(SavepointFormatType::Canonical))
}

/// The result of the savepoint recorded in `savepointInfo.triggerId`.
fn fold_trigger(cx: &mut Cx<'_>) {
    let Some(info) = cx
        .status
        .job_status
        .as_ref()
        .and_then(|j| j.savepoint_info.clone())
    else {
        return;
    };
    let Some(trigger_id) = info.trigger_id.clone() else {
        return;
    };
    let Some(observed) = cx
        .obs
        .trigger
        .as_ref()
        .filter(|t| t.trigger_id == trigger_id)
    else {
        return;
    };
    let trigger_type = info.trigger_type.unwrap_or(SnapshotTriggerType::Unknown);
    let clear = |cx: &mut Cx<'_>| {
        let sp = cx.savepoint_info();
        sp.trigger_id = None;
        sp.trigger_timestamp = None;
        sp.trigger_type = None;
        sp.format_type = None;
    };
    match &observed.state {
        TriggerState::InProgress => cx.soon(),
        TriggerState::Completed { location } => {
            clear(cx);
            let Some(location) = location.clone() else {
                cx.set_error(
                    EventReason::SavepointError,
                    format!(
                        "{SAVEPOINT_FAILED}Flink reported savepoint {trigger_id} complete \
                         without a location"
                    ),
                );
                return;
            };
            let nonce = match trigger_type {
                SnapshotTriggerType::Manual => super::target_spec(&cx.status)
                    .and_then(|t| t.job)
                    .and_then(|j| j.savepoint_trigger_nonce),
                _ => None,
            };
            let savepoint = Savepoint {
                time_stamp: Some(cx.now_ms),
                location: Some(location.clone()),
                trigger_type: Some(trigger_type),
                format_type: format_type(info.format_type),
                trigger_nonce: nonce,
            };
            let sp = cx.savepoint_info();
            sp.last_savepoint = Some(savepoint.clone());
            super::snapshots::record_completed_savepoint(cx, savepoint);
            if trigger_type == SnapshotTriggerType::Upgrade {
                cx.set_restore_path(Some(location.clone()));
            }
            cx.clear_error_of(&[SAVEPOINT_FAILED]);
            cx.events.push(Event::normal(
                EventReason::SavepointCreated,
                format!("Savepoint ({trigger_type}) completed at {location}"),
            ));
            cx.soon();
        }
        TriggerState::Failed { cause } => {
            clear(cx);
            cx.savepoint_failed = true;
            cx.set_error(
                EventReason::SavepointError,
                format!("{SAVEPOINT_FAILED}{trigger_type} savepoint {trigger_id}: {cause}"),
            );
        }
        TriggerState::Unknown => {
            clear(cx);
            cx.events.push(Event::warning(
                EventReason::SavepointError,
                format!(
                    "The JobManager no longer knows savepoint {trigger_id} ({trigger_type}); \
                     it will be taken again if still needed"
                ),
            ));
            cx.soon();
        }
    }
}

/// The job as the JobManager reports it.
fn fold_job(cx: &mut Cx<'_>) {
    let JobObservation::Found(info) = &cx.obs.job else {
        return;
    };
    if cx.job_id().is_some_and(|id| id != info.id) {
        // Another job than the one recorded: not ours to report.
        return;
    }
    let info = info.clone();
    let previous = cx.status.job_status.as_ref().and_then(|j| j.state);
    let js = cx.job_status();
    js.job_id = Some(info.id.clone());
    js.state = Some(info.state);
    // Details come from a cache that may not answer yet; keep what is known.
    if !info.name.is_empty() {
        js.job_name = Some(info.name.clone());
    }
    if info.start_time_ms > 0 {
        js.start_time = Some(info.start_time_ms.to_string());
    }
    if info.update_time_ms > 0 {
        js.update_time = Some(info.update_time_ms.to_string());
    }
    if previous != Some(info.state) {
        let from = previous.map_or("UNKNOWN", FlinkJobState::as_str);
        let mut message = format!("Job status changed from {from} to {}", info.state);
        if info.state == FlinkJobState::Failed {
            let cause = cx
                .obs
                .failure_cause
                .clone()
                .unwrap_or_else(|| "no cause reported".into());
            message.push_str(&format!(": {cause}"));
            cx.status.error = Some(format!("{JOB_FAILED}{cause}"));
            cx.error_raised = true;
            cx.events
                .push(Event::warning(EventReason::JobStatusChanged, message));
        } else {
            cx.events
                .push(Event::normal(EventReason::JobStatusChanged, message));
        }
    }
    if info.state == FlinkJobState::Running {
        cx.clear_error_of(&[JOB_FAILED]);
    }
}

/// The JobManager deployment status and TaskManager count.
fn fold_cluster(cx: &mut Cx<'_>) {
    use JobManagerDeploymentStatus as Jm;
    let previous = cx.status.job_manager_deployment_status;
    let next = match &cx.obs.cluster {
        ClusterObservation::Absent => previous.map(|_| Jm::Missing),
        ClusterObservation::Starting { .. } => Some(Jm::Deploying),
        ClusterObservation::Running { .. } => match cx.obs.job {
            JobObservation::Unknown { .. } => Some(Jm::DeployedNotReady),
            _ => Some(Jm::Ready),
        },
        ClusterObservation::Failed { .. } => Some(Jm::Error),
    };
    cx.status.job_manager_deployment_status = next;
    let taskmanagers = match &cx.obs.cluster {
        ClusterObservation::Running { taskmanagers, .. } => Some(*taskmanagers),
        ClusterObservation::Absent => Some(0),
        _ => None,
    };
    if let Some(n) = taskmanagers {
        let info = cx
            .status
            .task_manager
            .get_or_insert_with(TaskManagerInfo::default);
        info.replicas = Some(i32::try_from(n).unwrap_or(i32::MAX));
    }
    match &cx.obs.cluster {
        ClusterObservation::Failed {
            reason, log_tail, ..
        } => {
            let mut message = format!("{JOBMANAGER_FAILED}{reason}");
            if let Some(tail) = log_tail.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                let start = tail
                    .char_indices()
                    .rev()
                    .nth(MAX_LOG_TAIL)
                    .map_or(0, |(i, _)| i);
                message.push_str(&format!("; last log lines:\n{}", &tail[start..]));
            }
            if previous != Some(Jm::Error) {
                cx.events
                    .push(Event::warning(EventReason::Error, message.clone()));
            }
            cx.status.error = Some(message);
            cx.error_raised = true;
        }
        ClusterObservation::Running { .. } if next == Some(Jm::Ready) => {
            cx.clear_error_of(&[JOBMANAGER_FAILED]);
        }
        _ => {}
    }
}

/// The steady state of a deployed, running target: mark it stable, take manual savepoints,
/// choose when to look again.
pub(super) fn steady(
    cx: &mut Cx<'_>,
    target: &ReconciledSpec<FlinkDeploymentSpec>,
    spec_valid: bool,
) {
    // Flink reports a job RUNNING while its tasks are still being deployed (or fail while
    // they start), so stable also needs every task running where the details say so.
    let job_running = cx
        .observed_job()
        .is_some_and(|j| j.state == FlinkJobState::Running && j.all_tasks_running != Some(false));
    let ready = cx.status.job_manager_deployment_status == Some(JobManagerDeploymentStatus::Ready);
    if job_running && ready {
        let recon = cx.recon();
        // A rolled-back deployment runs `lastStableSpec`; the spec it recorded never was.
        if !recon.is_last_reconciled_spec_stable()
            && recon.state() != ReconciliationState::RolledBack
        {
            recon.mark_reconciled_spec_stable();
        }
    }
    if spec_valid {
        manual_savepoint(cx, target, job_running);
    }
    super::snapshots::steady(cx, target, job_running, spec_valid);
    if !(job_running && ready) || cx.trigger_pending() {
        let settled = matches!(
            cx.observed_job().map(|j| j.state),
            Some(s) if s.is_terminal()
        ) || matches!(cx.obs.cluster, ClusterObservation::Absent);
        if !settled {
            cx.soon();
        }
    }
}

/// A manual savepoint through the deprecated `savepointTriggerNonce`: taken when the desired
/// nonce differs from the recorded one and the job runs.
fn manual_savepoint(
    cx: &mut Cx<'_>,
    target: &ReconciledSpec<FlinkDeploymentSpec>,
    job_running: bool,
) {
    let wanted = cx
        .desired
        .job
        .as_ref()
        .and_then(|j| j.savepoint_trigger_nonce);
    let done = target
        .spec
        .job
        .as_ref()
        .and_then(|j| j.savepoint_trigger_nonce);
    if wanted.is_none()
        || wanted == done
        || cx.trigger_pending()
        || !job_running
        || cx.savepoint_failed
    {
        return;
    }
    if super::snapshots::manual_savepoint_resource(cx, target, wanted) {
        return;
    }
    let Some(job_id) = cx.job_id() else {
        return;
    };
    let mut recorded = target.spec.clone();
    if let Some(job) = recorded.job.as_mut() {
        job.savepoint_trigger_nonce = wanted;
    }
    let first = super::is_first_deployment(target);
    if !cx.set_target(&recorded, first) {
        return;
    }
    let call = savepoint_call(cx, &target.spec, job_id, false);
    record_trigger(cx, &call, api::SnapshotTriggerType::Manual);
    cx.act(Action::TriggerSavepoint(call));
    cx.soon();
}

/// A savepoint call for the cluster running `running_spec`, with this pass's trigger id.
pub(super) fn savepoint_call(
    cx: &Cx<'_>,
    running_spec: &FlinkDeploymentSpec,
    job_id: String,
    drain: bool,
) -> SavepointCall {
    SavepointCall {
        job_id,
        trigger_id: cx.fresh.trigger_id.clone(),
        target_dir: plan_builder::savepoint_dir(&cx.key, running_spec, cx.settings),
        format: cx.savepoint_format(),
        drain,
    }
}

/// Records a trigger in the status before it is sent (write-ahead).
pub(super) fn record_trigger(cx: &mut Cx<'_>, call: &SavepointCall, kind: SnapshotTriggerType) {
    let now = cx.now_ms;
    let sp = cx.savepoint_info();
    sp.trigger_id = Some(call.trigger_id.clone());
    sp.trigger_timestamp = Some(now);
    sp.trigger_type = Some(kind);
    sp.format_type = Some(match call.format {
        SavepointFormat::Canonical => SavepointFormatType::Canonical,
        SavepointFormat::Native => SavepointFormatType::Native,
    });
}
