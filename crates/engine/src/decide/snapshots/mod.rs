//! Snapshots a running deployment takes on its own (periodic, manual through the deprecated
//! nonces, the upgrade savepoint) and their retention.
//!
//! With `kubernetes.operator.snapshot.resource.enabled` (the default, as in the Apache
//! operator) each one becomes a `FlinkStateSnapshot` named `<deployment>-<savepoint|checkpoint>
//! -<trigger type>-<epoch ms>`, which the snapshot reconciler takes (an upgrade savepoint is
//! registered with `alreadyExists`). Otherwise they are taken here and recorded in the legacy
//! `savepointInfo` / `checkpointInfo`.
//!
//! Write-ahead for resources: before creating one, the status records it as a trigger without a
//! trigger id (`triggerType` + `triggerTimestamp`, which name the resource); the record is
//! cleared once the resource exists, and a pass that finds the record but not the resource
//! creates it again (creating an existing one is a no-op).

mod checkpoints;
mod periodic;
pub(crate) mod retention;

use api::reconciled::ReconciledSpec;
use api::{
    CheckpointInfo, FlinkDeploymentSpec, FlinkDeploymentStatus, JobStatus, Savepoint,
    SavepointFormatType, SavepointInfo, SnapshotTriggerType,
};

use super::Cx;
use crate::action::{Action, Event, EventReason};
use crate::plan_builder;
use crate::snapshot::{self, Generated, SnapshotKind, generated_name};

pub(crate) use checkpoints::CHECKPOINT_FAILED;

/// Operator option: record snapshots as `FlinkStateSnapshot` resources (default `true`).
pub const SNAPSHOT_RESOURCE_ENABLED: &str = "kubernetes.operator.snapshot.resource.enabled";
/// Operator option: generated savepoint resources dispose their files when deleted. Default
/// `true` here (the Apache operator's is `false`): retention that deleted only the records
/// would leave every periodic savepoint on storage for good.
pub const DISPOSE_ON_DELETE: &str = "kubernetes.operator.savepoint.dispose-on-delete";

/// Folds what was observed about snapshots: the legacy checkpoint trigger, and resources that
/// the status says are to be created.
pub(super) fn fold(cx: &mut Cx<'_>) {
    resolve_pending(cx);
    last_savepoint_from_resources(cx);
    report_failed_resources(cx);
    checkpoints::fold_trigger(cx);
}

/// A failed snapshot resource of this deployment shows in the deployment's status too: while
/// the newest settled snapshot of a kind is `FAILED`, `status.error` says so (with an event on
/// the deployment); a newer completed one clears it. Never over another kind of error.
fn report_failed_resources(cx: &mut Cx<'_>) {
    for (kind, prefix, reason) in [
        (
            SnapshotKind::Savepoint,
            super::SAVEPOINT_FAILED,
            EventReason::SavepointError,
        ),
        (
            SnapshotKind::Checkpoint,
            CHECKPOINT_FAILED,
            EventReason::CheckpointError,
        ),
    ] {
        let newest = cx
            .obs
            .snapshots
            .resources
            .iter()
            .filter(|s| SnapshotKind::of(s) == kind && s.metadata.deletion_timestamp.is_none())
            .filter(|s| {
                matches!(
                    snapshot::state(s),
                    api::FlinkStateSnapshotState::Completed | api::FlinkStateSnapshotState::Failed
                )
            })
            .max_by_key(|s| (snapshot::created_ms(s), s.metadata.name.clone()));
        let Some(newest) = newest else {
            continue;
        };
        if snapshot::state(newest) == api::FlinkStateSnapshotState::Completed {
            cx.clear_error_of(&[prefix]);
            continue;
        }
        let free = cx
            .status
            .error
            .as_deref()
            .is_none_or(|e| e.starts_with(prefix));
        if free {
            let name = newest.metadata.name.clone().unwrap_or_default();
            let why = newest
                .status
                .as_ref()
                .and_then(|s| s.error.clone())
                .unwrap_or_else(|| "no reason recorded".into());
            cx.set_error(
                reason,
                format!("{prefix}FlinkStateSnapshot {name} failed: {why}"),
            );
        }
    }
}

/// Keeps `savepointInfo.lastSavepoint` naming the newest completed savepoint when savepoints
/// are taken as resources, so tables and scripts that read it stay current. Not while a
/// resource is still to be created: an upgrade savepoint's resource is made from it.
fn last_savepoint_from_resources(cx: &mut Cx<'_>) {
    if pending(cx, SnapshotKind::Savepoint).is_some() || cx.trigger_pending() {
        return;
    }
    let newest = cx
        .obs
        .snapshots
        .resources
        .iter()
        .filter(|s| SnapshotKind::of(s) == SnapshotKind::Savepoint)
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter(|s| snapshot::state(s) == api::FlinkStateSnapshotState::Completed)
        .filter_map(|s| {
            let status = s.status.as_ref()?;
            let at = status
                .result_timestamp
                .as_deref()
                .and_then(snapshot::parse_rfc3339)?;
            Some((at, status.path.clone()?, s))
        })
        .max_by_key(|(at, _, _)| *at);
    let Some((at, location, s)) = newest else {
        return;
    };
    let current = savepoint_info(cx).and_then(|i| i.last_savepoint.clone());
    let newer = current.as_ref().is_none_or(|c| {
        c.time_stamp.is_none_or(|t| t < at)
            && !c
                .location
                .as_deref()
                .is_some_and(|l| snapshot::decide::same_path(l, &location))
    });
    if !newer {
        return;
    }
    let format = s
        .spec
        .savepoint
        .as_ref()
        .map_or(SavepointFormatType::Canonical, |sp| sp.format_type());
    cx.savepoint_info().last_savepoint = Some(Savepoint {
        time_stamp: Some(at),
        location: Some(location),
        trigger_type: Some(snapshot::trigger_type(s)),
        format_type: Some(format),
        trigger_nonce: None,
    });
}

/// The steady state of a running deployment: manual checkpoints, periodic snapshots,
/// retention.
pub(super) fn steady(
    cx: &mut Cx<'_>,
    target: &ReconciledSpec<FlinkDeploymentSpec>,
    job_running: bool,
    spec_valid: bool,
) {
    if !spec_valid {
        return;
    }
    checkpoints::manual(cx, target, job_running);
    periodic::step(cx, SnapshotKind::Savepoint, job_running);
    periodic::step(cx, SnapshotKind::Checkpoint, job_running);
    retention::step(cx);
}

/// Whether snapshots are recorded as resources.
pub(super) fn resources_enabled(cx: &Cx<'_>) -> bool {
    cx.desired
        .flink_config()
        .get_bool(SNAPSHOT_RESOURCE_ENABLED)
        .ok()
        .flatten()
        .unwrap_or(true)
}

/// A completed savepoint (manual, periodic or upgrade, taken through `savepointInfo`): kept in
/// the legacy history, or — an upgrade savepoint with resources enabled — recorded as a
/// `FlinkStateSnapshot` instead (the history then holds no second owner of its files).
pub(super) fn record_completed_savepoint(cx: &mut Cx<'_>, savepoint: Savepoint) {
    let upgrade = savepoint.trigger_type == Some(SnapshotTriggerType::Upgrade);
    if upgrade && resources_enabled(cx) {
        let at = cx.now_ms;
        let format = savepoint
            .format_type
            .unwrap_or(SavepointFormatType::Canonical);
        let info = cx.savepoint_info();
        info.trigger_type = Some(SnapshotTriggerType::Upgrade);
        info.trigger_timestamp = Some(at);
        info.format_type = Some(format);
        create(
            cx,
            SnapshotKind::Savepoint,
            SnapshotTriggerType::Upgrade,
            at,
        );
        return;
    }
    cx.savepoint_info()
        .savepoint_history
        .get_or_insert_with(Vec::new)
        .push(savepoint);
}

/// A manual savepoint through `savepointTriggerNonce` with resources enabled: the nonce is
/// recorded as handled and a `FlinkStateSnapshot` created, which the snapshot reconciler
/// takes. `false` when resources are disabled (the caller triggers it itself).
pub(super) fn manual_savepoint_resource(
    cx: &mut Cx<'_>,
    target: &ReconciledSpec<FlinkDeploymentSpec>,
    wanted: Option<i64>,
) -> bool {
    if !resources_enabled(cx) {
        return false;
    }
    if pending(cx, SnapshotKind::Savepoint).is_some() {
        return true;
    }
    let mut recorded = target.spec.clone();
    if let Some(job) = recorded.job.as_mut() {
        job.savepoint_trigger_nonce = wanted;
    }
    if !cx.set_target(&recorded, super::is_first_deployment(target)) {
        return true;
    }
    request(
        cx,
        SnapshotKind::Savepoint,
        SnapshotTriggerType::Manual,
        &format!(
            "savepointTriggerNonce {}",
            wanted.map_or_else(String::new, |n| n.to_string())
        ),
    );
    true
}

/// Records a snapshot to be taken through a new resource and creates it.
fn request(cx: &mut Cx<'_>, kind: SnapshotKind, trigger: SnapshotTriggerType, why: &str) {
    let at = cx.now_ms;
    let format = match cx.savepoint_format() {
        crate::action::SavepointFormat::Native => SavepointFormatType::Native,
        crate::action::SavepointFormat::Canonical => SavepointFormatType::Canonical,
    };
    match kind {
        SnapshotKind::Savepoint => {
            let info = cx.savepoint_info();
            info.trigger_type = Some(trigger);
            info.trigger_timestamp = Some(at);
            info.format_type = Some(format);
        }
        SnapshotKind::Checkpoint => {
            let info = checkpoint_info(cx);
            info.trigger_type = Some(trigger);
            info.trigger_timestamp = Some(at);
            info.format_type = Some(api::CheckpointType::Full);
        }
    }
    let name = generated_name(cx.resource.name(), kind, trigger, at);
    cx.events.push(Event::normal(
        EventReason::SnapshotTriggered,
        format!(
            "{} {} requested ({why}): FlinkStateSnapshot {name}",
            trigger.as_str().to_lowercase(),
            kind.as_str()
        ),
    ));
    create(cx, kind, trigger, at);
}

/// Adds the action that creates the resource recorded as pending.
fn create(cx: &mut Cx<'_>, kind: SnapshotKind, trigger: SnapshotTriggerType, at: i64) {
    let path = match (kind, trigger) {
        (SnapshotKind::Checkpoint, _) => None,
        (SnapshotKind::Savepoint, SnapshotTriggerType::Upgrade) => cx
            .status
            .job_status
            .as_ref()
            .and_then(|j| j.savepoint_info.as_ref())
            .and_then(|s| s.last_savepoint.as_ref())
            .and_then(|s| s.location.clone()),
        (SnapshotKind::Savepoint, _) => {
            let running = super::target_spec(&cx.status).unwrap_or_else(|| cx.desired.clone());
            plan_builder::savepoint_dir(&cx.key, &running, cx.settings)
        }
    };
    let format = cx
        .status
        .job_status
        .as_ref()
        .and_then(|j| j.savepoint_info.as_ref())
        .and_then(|s| s.format_type)
        .unwrap_or(SavepointFormatType::Canonical);
    let generated = Generated {
        kind,
        trigger,
        at_ms: at,
        path,
        format,
        dispose_on_delete: cx.option_bool(DISPOSE_ON_DELETE, true),
    };
    let resource = generated.resource(cx.resource);
    cx.act(Action::CreateSnapshotResource(Box::new(resource)));
}

/// The resource the status says is to be created for `kind`: `(trigger type, epoch ms)`.
pub(super) fn pending(cx: &Cx<'_>, kind: SnapshotKind) -> Option<(SnapshotTriggerType, i64)> {
    pending_in(cx.status.job_status.as_ref()?, kind)
}

fn pending_in(job: &JobStatus, kind: SnapshotKind) -> Option<(SnapshotTriggerType, i64)> {
    match kind {
        SnapshotKind::Savepoint => {
            let s = job.savepoint_info.as_ref()?;
            match (&s.trigger_id, s.trigger_type, s.trigger_timestamp) {
                (None, Some(t), Some(at)) => Some((t, at)),
                _ => None,
            }
        }
        SnapshotKind::Checkpoint => {
            let c = job.checkpoint_info.as_ref()?;
            match (&c.trigger_id, c.trigger_type, c.trigger_timestamp) {
                (None, Some(t), Some(at)) => Some((t, at)),
                _ => None,
            }
        }
    }
}

/// Clears the record of a resource to be created (it exists now).
pub(crate) fn clear_pending(
    status: &mut FlinkDeploymentStatus,
    kind: SnapshotKind,
    trigger: SnapshotTriggerType,
    at: i64,
) {
    let Some(job) = status.job_status.as_mut() else {
        return;
    };
    if pending_in(job, kind) != Some((trigger, at)) {
        return;
    }
    match kind {
        SnapshotKind::Savepoint => {
            if let Some(s) = job.savepoint_info.as_mut() {
                s.trigger_type = None;
                s.trigger_timestamp = None;
                s.format_type = None;
            }
        }
        SnapshotKind::Checkpoint => {
            if let Some(c) = job.checkpoint_info.as_mut() {
                c.trigger_type = None;
                c.trigger_timestamp = None;
                c.format_type = None;
            }
        }
    }
}

/// Resources recorded as to be created: cleared when they exist, created (again) otherwise.
fn resolve_pending(cx: &mut Cx<'_>) {
    for kind in [SnapshotKind::Savepoint, SnapshotKind::Checkpoint] {
        let Some((trigger, at)) = pending(cx, kind) else {
            continue;
        };
        let name = generated_name(cx.resource.name(), kind, trigger, at);
        let exists = cx
            .obs
            .snapshots
            .resources
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some(name.as_str()));
        if exists {
            clear_pending(&mut cx.status, kind, trigger, at);
        } else if cx.problems().is_empty() {
            create(cx, kind, trigger, at);
            cx.soon();
        }
        // An invalid spec acts on nothing; the record waits until the spec is valid again.
    }
}

pub(super) fn checkpoint_info<'c>(cx: &'c mut Cx<'_>) -> &'c mut CheckpointInfo {
    cx.job_status()
        .checkpoint_info
        .get_or_insert_with(CheckpointInfo::default)
}

/// The legacy savepoint bookkeeping, if any.
pub(super) fn savepoint_info<'c>(cx: &'c Cx<'_>) -> Option<&'c SavepointInfo> {
    cx.status.job_status.as_ref()?.savepoint_info.as_ref()
}
