//! Checkpoints the operator triggers through the legacy `checkpointInfo` (manual through the
//! deprecated `checkpointTriggerNonce`, periodic without snapshot resources): the trigger id is
//! recorded before it is sent, its result folded into `lastCheckpoint`.

use api::reconciled::ReconciledSpec;
use api::{Checkpoint, CheckpointType, FlinkDeploymentSpec, SnapshotTriggerType};

use super::{Cx, checkpoint_info, pending, request, resources_enabled};
use crate::action::{Action, Event, EventReason};
use crate::observation::TriggerState;
use crate::plan_builder;
use crate::snapshot::SnapshotKind;

/// Prefix of `status.error` for a failed checkpoint; cleared by the next completed one.
pub(crate) const CHECKPOINT_FAILED: &str = "Checkpoint failed: ";

/// The result of the checkpoint recorded in `checkpointInfo.triggerId`.
pub(super) fn fold_trigger(cx: &mut Cx<'_>) {
    let Some(info) = cx
        .status
        .job_status
        .as_ref()
        .and_then(|j| j.checkpoint_info.clone())
    else {
        return;
    };
    let Some(trigger_id) = info.trigger_id.clone() else {
        return;
    };
    let Some(observed) = cx
        .obs
        .snapshots
        .checkpoint_trigger
        .as_ref()
        .filter(|t| t.trigger_id == trigger_id)
    else {
        return;
    };
    let trigger_type = info.trigger_type.unwrap_or(SnapshotTriggerType::Unknown);
    let clear = |cx: &mut Cx<'_>| {
        let c = checkpoint_info(cx);
        c.trigger_id = None;
        c.trigger_timestamp = None;
        c.trigger_type = None;
        c.format_type = None;
    };
    match observed.state.clone() {
        TriggerState::InProgress => cx.soon(),
        TriggerState::Completed { location } => {
            clear(cx);
            let nonce = match trigger_type {
                SnapshotTriggerType::Manual => super::super::target_spec(&cx.status)
                    .and_then(|t| t.job)
                    .and_then(|j| j.checkpoint_trigger_nonce),
                _ => None,
            };
            checkpoint_info(cx).last_checkpoint = Some(Checkpoint {
                time_stamp: info.trigger_timestamp.or(Some(cx.now_ms)),
                trigger_type: Some(trigger_type),
                format_type: info.format_type.or(Some(CheckpointType::Full)),
                trigger_nonce: nonce,
            });
            cx.clear_error_of(&[CHECKPOINT_FAILED]);
            let at = location.map_or_else(String::new, |l| format!(" at {l}"));
            cx.events.push(Event::normal(
                EventReason::CheckpointCreated,
                format!("Checkpoint ({trigger_type}) completed{at}"),
            ));
        }
        TriggerState::Failed { cause } => {
            clear(cx);
            cx.set_error(
                EventReason::CheckpointError,
                format!("{CHECKPOINT_FAILED}{trigger_type} checkpoint {trigger_id}: {cause}"),
            );
        }
        TriggerState::Unknown => {
            clear(cx);
            cx.events.push(Event::warning(
                EventReason::CheckpointError,
                format!(
                    "The JobManager no longer knows checkpoint {trigger_id} ({trigger_type}); \
                     it is not taken again"
                ),
            ));
        }
    }
}

/// `true` while a checkpoint of this deployment is triggered through the legacy status.
pub(super) fn in_flight(cx: &Cx<'_>) -> bool {
    cx.status
        .job_status
        .as_ref()
        .and_then(|j| j.checkpoint_info.as_ref())
        .is_some_and(|c| c.trigger_id.is_some())
}

/// Whether the deployment's Flink can take a checkpoint on request (1.17+).
pub(super) fn supported(cx: &Cx<'_>) -> bool {
    plan_builder::flink_version(cx.desired)
        .map(|v| v.is_at_least(api::FlinkVersion::v1_17))
        .unwrap_or(false)
}

/// Records a checkpoint trigger (write-ahead) and sends it.
pub(super) fn trigger(cx: &mut Cx<'_>, kind: SnapshotTriggerType) {
    let Some(job_id) = cx.job_id() else {
        return;
    };
    let trigger_id = cx.fresh.trigger_id.clone();
    let now = cx.now_ms;
    let info = checkpoint_info(cx);
    info.trigger_id = Some(trigger_id.clone());
    info.trigger_timestamp = Some(now);
    info.trigger_type = Some(kind);
    info.format_type = Some(CheckpointType::Full);
    cx.act(Action::TriggerCheckpoint { job_id, trigger_id });
    cx.soon();
}

/// `true` when this pass already sends a savepoint (the fresh trigger id is taken).
pub(super) fn savepoint_this_pass(cx: &Cx<'_>) -> bool {
    cx.actions.iter().any(|a| {
        matches!(
            a,
            Action::TriggerSavepoint(_) | Action::StopWithSavepoint(_)
        )
    })
}

/// A manual checkpoint through the deprecated `checkpointTriggerNonce`: taken when the desired
/// nonce differs from the recorded one and the job runs; the nonce is recorded as handled when
/// it is triggered (a failed one is not retried, as for savepoints).
pub(super) fn manual(
    cx: &mut Cx<'_>,
    target: &ReconciledSpec<FlinkDeploymentSpec>,
    job_running: bool,
) {
    let wanted = cx
        .desired
        .job
        .as_ref()
        .and_then(|j| j.checkpoint_trigger_nonce);
    let done = target
        .spec
        .job
        .as_ref()
        .and_then(|j| j.checkpoint_trigger_nonce);
    if wanted.is_none() || wanted == done || !job_running {
        return;
    }
    if in_flight(cx) || pending(cx, SnapshotKind::Checkpoint).is_some() {
        return;
    }
    if savepoint_this_pass(cx) {
        cx.soon();
        return;
    }
    if !supported(cx) {
        cx.set_error(
            EventReason::CheckpointError,
            format!(
                "{CHECKPOINT_FAILED}checkpointTriggerNonce asks for a checkpoint, but manual \
                 checkpoints need Flink 1.17 or later; take a savepoint instead"
            ),
        );
        return;
    }
    // The target may have changed this pass (a manual savepoint recorded its nonce).
    let mut recorded = super::super::target_spec(&cx.status).unwrap_or_else(|| target.spec.clone());
    if let Some(job) = recorded.job.as_mut() {
        job.checkpoint_trigger_nonce = wanted;
    }
    if !cx.set_target(&recorded, super::super::is_first_deployment(target)) {
        return;
    }
    let why = format!(
        "checkpointTriggerNonce {}",
        wanted.map_or_else(String::new, |n| n.to_string())
    );
    if resources_enabled(cx) {
        request(
            cx,
            SnapshotKind::Checkpoint,
            SnapshotTriggerType::Manual,
            &why,
        );
        return;
    }
    cx.events.push(Event::normal(
        EventReason::SnapshotTriggered,
        format!("manual checkpoint triggered ({why})"),
    ));
    trigger(cx, SnapshotTriggerType::Manual);
}
