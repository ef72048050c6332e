//! Periodic snapshots: `kubernetes.operator.periodic.savepoint.interval` /
//! `…periodic.checkpoint.interval`, a Flink duration or a Quartz cron expression
//! ([`api::schedule`]). A snapshot is due when the schedule's next time after the last periodic
//! trigger (`lastPeriodicSavepointTimestamp` / `lastPeriodicCheckpointTimestamp`; before the
//! first one, the deployment's creation) has passed, and is taken only while the job runs and
//! no other snapshot of the same kind is in flight.

use api::SnapshotTriggerType;
use api::schedule::Schedule;

use super::checkpoints;
use super::{Cx, checkpoint_info, pending, request, resources_enabled};
use crate::action::{Action, Event, EventReason};
use crate::snapshot::{self, SnapshotKind};

/// Operator option: the periodic savepoint schedule.
pub const PERIODIC_SAVEPOINT: &str = "kubernetes.operator.periodic.savepoint.interval";
/// Operator option: the periodic checkpoint schedule.
pub const PERIODIC_CHECKPOINT: &str = "kubernetes.operator.periodic.checkpoint.interval";

/// Takes a periodic snapshot of `kind` when one is due.
pub(super) fn step(cx: &mut Cx<'_>, kind: SnapshotKind, job_running: bool) {
    let key = match kind {
        SnapshotKind::Savepoint => PERIODIC_SAVEPOINT,
        SnapshotKind::Checkpoint => PERIODIC_CHECKPOINT,
    };
    let Some(text) = cx.desired.flink_config().get(key) else {
        return;
    };
    // An invalid schedule was refused by validation already.
    let Ok(Some(schedule)) = Schedule::parse(&text) else {
        return;
    };
    if !job_running || busy(cx, kind) {
        return;
    }
    let last = last_trigger(cx, kind);
    let Some(next) = schedule.next_after(last) else {
        return;
    };
    if next > cx.now_ms {
        let wait = u64::try_from(next - cx.now_ms).unwrap_or(u64::MAX);
        cx.requeue = cx.requeue.min(std::time::Duration::from_millis(wait));
        return;
    }
    if kind == SnapshotKind::Checkpoint
        && (!checkpoints::supported(cx) || checkpoints::savepoint_this_pass(cx))
    {
        return;
    }
    let now = cx.now_ms;
    let why = format!("schedule `{}`", text.trim());
    match kind {
        SnapshotKind::Savepoint => {
            cx.savepoint_info().last_periodic_savepoint_timestamp = Some(now)
        }
        SnapshotKind::Checkpoint => {
            checkpoint_info(cx).last_periodic_checkpoint_timestamp = Some(now);
        }
    }
    if resources_enabled(cx) {
        request(cx, kind, SnapshotTriggerType::Periodic, &why);
        return;
    }
    cx.events.push(Event::normal(
        EventReason::SnapshotTriggered,
        format!("periodic {} triggered ({why})", kind.as_str()),
    ));
    match kind {
        SnapshotKind::Savepoint => {
            let Some(job_id) = cx.job_id() else {
                return;
            };
            let running =
                super::super::target_spec(&cx.status).unwrap_or_else(|| cx.desired.clone());
            let call = super::super::observe_status::savepoint_call(cx, &running, job_id, false);
            super::super::observe_status::record_trigger(cx, &call, SnapshotTriggerType::Periodic);
            cx.act(Action::TriggerSavepoint(call));
            cx.soon();
        }
        SnapshotKind::Checkpoint => checkpoints::trigger(cx, SnapshotTriggerType::Periodic),
    }
}

/// Another snapshot of `kind` is in flight: a legacy trigger, a resource still to be created,
/// or one of this deployment's periodic snapshot resources not finished yet (so a slow
/// snapshot does not pile up behind a short interval).
fn busy(cx: &Cx<'_>, kind: SnapshotKind) -> bool {
    let legacy = match kind {
        SnapshotKind::Savepoint => cx.trigger_pending() || cx.savepoint_failed,
        SnapshotKind::Checkpoint => checkpoints::in_flight(cx),
    };
    legacy
        || pending(cx, kind).is_some()
        || cx.obs.snapshots.resources.iter().any(|s| {
            SnapshotKind::of(s) == kind
                && snapshot::trigger_type(s) == SnapshotTriggerType::Periodic
                && s.metadata.deletion_timestamp.is_none()
                && matches!(
                    snapshot::state(s),
                    api::FlinkStateSnapshotState::TriggerPending
                        | api::FlinkStateSnapshotState::InProgress
                )
        })
}

/// When the last periodic snapshot of `kind` was triggered; before the first, when the
/// deployment was created (so a daily schedule does not fire at once), else its job started.
fn last_trigger(cx: &Cx<'_>, kind: SnapshotKind) -> i64 {
    let job = cx.status.job_status.as_ref();
    let recorded = match kind {
        SnapshotKind::Savepoint => job
            .and_then(|j| j.savepoint_info.as_ref())
            .and_then(|s| s.last_periodic_savepoint_timestamp),
        SnapshotKind::Checkpoint => job
            .and_then(|j| j.checkpoint_info.as_ref())
            .and_then(|c| c.last_periodic_checkpoint_timestamp),
    };
    let created = cx
        .resource
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_millisecond());
    let started = job
        .and_then(|j| j.start_time.as_deref())
        .and_then(|t| t.parse::<i64>().ok());
    recorded
        .filter(|t| *t > 0)
        .or(created)
        .or(started)
        .unwrap_or(cx.now_ms)
}
