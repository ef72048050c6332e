//! Spec changes of a running deployment, and stopping the old job with its state kept.
//!
//! A change is first recorded (write-ahead: target = desired with `job.state: suspended` and
//! the upgrade mode used, `UPGRADING`, restore path cleared), then the old job is stopped one
//! step per pass:
//! - `savepoint`: the trigger id is recorded, then stop-with-savepoint is sent; its completed
//!   path becomes `upgradeSavepointPath`;
//! - `last-state`: the latest completed checkpoint, confirmed on storage, is recorded, then the
//!   job is cancelled (the cluster keeps checkpoints on cancellation); after the cancel the
//!   newest checkpoint is recorded again;
//! - `stateless`: the job is cancelled.
//!
//! The cluster is deleted only when the job has ended or is gone and, for the stateful modes,
//! the restore path is recorded. Then the new spec is deployed from exactly that path (or the
//! job stays suspended).

use api::reconciled::ReconciledSpec;
use api::{
    ChangeKind, DeploymentMode, FlinkDeploymentSpec, FlinkJobState, ReconciliationState,
    SnapshotTriggerType, UpgradeMode,
};

use super::observe_status::{record_trigger, savepoint_call, steady};
use super::options::{LAST_STATE_FALLBACK, LAST_STATE_MAX_AGE, human};
use super::{Cx, deploy, is_first_deployment, is_suspended, suspend, suspended_copy, upgrade_mode};
use crate::action::{Action, Event, EventReason};
use crate::observation::{CheckpointRef, ClusterObservation, JobInfo, JobObservation};
use crate::plan_builder;

/// Prefix of `status.error` when a stop waits for something it cannot do without.
pub(crate) const BLOCKED: &str = "Cannot stop the job safely yet: ";

/// `DEPLOYED` with the target running: observe, or start applying a spec change.
pub(super) fn running(cx: &mut Cx<'_>, target: &ReconciledSpec<FlinkDeploymentSpec>) {
    let diff = api::diff(&target.spec, cx.desired);
    if diff.kind == ChangeKind::Ignore {
        let valid = cx.validate();
        let mut target = target.clone();
        if valid && !diff.changes.is_empty() {
            // Record ignored changes (upgrade mode, nonces handled elsewhere, operator keys) so
            // the next real change is judged against them; the savepoint nonce stays until its
            // savepoint is taken.
            let mut spec = cx.desired.clone();
            if let (Some(job), Some(old)) = (spec.job.as_mut(), target.spec.job.as_ref()) {
                job.savepoint_trigger_nonce = old.savepoint_trigger_nonce;
                job.checkpoint_trigger_nonce = old.checkpoint_trigger_nonce;
            }
            if cx.set_target(&spec, is_first_deployment(&target)) {
                target.spec = spec;
            }
        }
        if valid && super::recovery::check(cx, &target) {
            return;
        }
        steady(cx, &target, valid);
        return;
    }
    if !cx.validate() {
        steady(cx, target, false);
        return;
    }
    if cx.trigger_pending() {
        // A manual savepoint is running: let it finish before the job is stopped.
        steady(cx, target, true);
        cx.soon();
        return;
    }
    if diff.kind == ChangeKind::Scale
        && cx.desired.mode() == DeploymentMode::Standalone
        && api::diff::can_scale_in_place(cx.desired)
    {
        scale(cx, target, "the job cluster");
        return;
    }
    let (mode, redeploy_from) = if diff.kind == ChangeKind::SavepointRedeploy {
        (
            UpgradeMode::Stateless,
            deploy::initial_savepoint(cx.desired),
        )
    } else {
        (upgrade_mode(cx.desired), None)
    };
    if mode == UpgradeMode::LastState && !plan_builder::retains_checkpoints_on_cancel(&target.spec)
    {
        cx.set_error(
            EventReason::UpgradeBlocked,
            format!(
                "{BLOCKED}the running cluster deletes its checkpoints when the job is cancelled \
                 ({} is not {}), so a last-state upgrade would lose the state; use \
                 upgradeMode savepoint",
                plan_builder::RETENTION_KEY,
                plan_builder::RETAIN_ON_CANCELLATION
            ),
        );
        steady(cx, target, true);
        return;
    }
    let what = if is_suspended(cx.desired) {
        format!("Suspending the job ({mode} mode)")
    } else if diff.kind == ChangeKind::SavepointRedeploy {
        "Redeploying from spec.job.initialSavepointPath".to_string()
    } else {
        format!("Spec changed: {diff}; upgrading the job ({mode} mode)")
    };
    cx.events
        .push(Event::normal(EventReason::SpecChanged, what));
    let stop_target = suspended_copy(cx.desired, mode);
    if !cx.set_target(&stop_target, false) {
        return;
    }
    cx.recon().state = Some(ReconciliationState::Upgrading);
    cx.set_restore_path(redeploy_from);
    stop_step(cx, mode, &target.spec);
}

/// Standalone reactive clusters (and standalone session clusters) take a new TaskManager count
/// without a redeploy; `what` names the cluster in the event.
pub(super) fn scale(cx: &mut Cx<'_>, target: &ReconciledSpec<FlinkDeploymentSpec>, what: &str) {
    let meta = api::reconciled::ReconciliationMetadata::new(
        cx.resource.metadata.generation,
        is_first_deployment(target),
    );
    match api::reconciled::write(cx.desired, &meta) {
        Ok(json) => {
            let n = plan_builder::taskmanager_count(cx.desired);
            cx.events.push(Event::normal(
                EventReason::Scaling,
                format!("Scaling {what} to {n} TaskManagers"),
            ));
            cx.act(Action::Scale {
                taskmanagers: n,
                reconciled_spec: json,
            });
            cx.soon();
        }
        Err(e) => cx.set_error(EventReason::Error, e.to_string()),
    }
}

/// `UPGRADING` with the target suspended: the old job is being stopped.
pub(super) fn stopping(cx: &mut Cx<'_>, target: &ReconciledSpec<FlinkDeploymentSpec>) {
    // A spec made invalid before anything was stopped stops nothing: the job keeps running
    // until the spec is fixed.
    let alive = cx.observed_job().is_some_and(|j| !j.state.is_terminal());
    let started = cx.trigger_pending() || cx.restore_path().is_some();
    if alive && !started && !cx.validate() {
        return;
    }
    let recorded = upgrade_mode(&target.spec);
    stop_step(cx, recorded, &target.spec);
}

/// One step of stopping the old job in `mode`. When the step is blocked and the user has since
/// chosen another upgrade mode (and nothing is in flight), the new mode is recorded and tried:
/// nothing was destroyed yet, so that is safe, and it is the way out of a blocked upgrade.
fn stop_step(cx: &mut Cx<'_>, mode: UpgradeMode, running_spec: &FlinkDeploymentSpec) {
    let Err(blocked) = try_stop(cx, mode, running_spec) else {
        return;
    };
    let wanted = upgrade_mode(cx.desired);
    if wanted != mode && !cx.trigger_pending() && cx.restore_path().is_none() {
        let target = super::target_spec(&cx.status).unwrap_or_else(|| cx.desired.clone());
        if cx.set_target(&suspended_copy(&target, wanted), false) {
            cx.events.push(Event::normal(
                EventReason::SpecChanged,
                format!("Stopping the job with {wanted} mode instead of {mode}"),
            ));
            if try_stop(cx, wanted, running_spec).is_ok() {
                return;
            }
        }
    }
    cx.set_error(EventReason::UpgradeBlocked, format!("{BLOCKED}{blocked}"));
}

/// Does the next stop step, or says why it cannot.
fn try_stop(
    cx: &mut Cx<'_>,
    mode: UpgradeMode,
    running_spec: &FlinkDeploymentSpec,
) -> Result<(), String> {
    match &cx.obs.cluster {
        ClusterObservation::Absent => {
            require_state(cx, mode, "the cluster is gone")?;
            after_stop(cx, false);
            Ok(())
        }
        ClusterObservation::Failed { .. } => ended(cx, mode, "the JobManager exited"),
        ClusterObservation::Starting { .. } => {
            cx.soon();
            Ok(())
        }
        ClusterObservation::Running { .. } => match &cx.obs.job {
            JobObservation::Unknown { .. } => {
                cx.soon();
                Ok(())
            }
            JobObservation::NotFound => ended(cx, mode, "the JobManager does not know the job"),
            JobObservation::Found(info) if info.state.is_terminal() => {
                let why = format!("the job is {}", info.state);
                ended(cx, mode, &why)
            }
            JobObservation::Found(info) => {
                let info = info.clone();
                alive(cx, mode, &info, running_spec)
            }
        },
    }
}

/// The old job still runs (or restarts).
fn alive(
    cx: &mut Cx<'_>,
    mode: UpgradeMode,
    info: &JobInfo,
    running_spec: &FlinkDeploymentSpec,
) -> Result<(), String> {
    match mode {
        UpgradeMode::Stateless => {
            cancel(cx, info);
            Ok(())
        }
        UpgradeMode::Savepoint => {
            if cx.trigger_pending() {
                cx.soon();
            } else if cx.savepoint_failed {
                // retried after `retry_interval` (set with the error)
            } else if cx.restore_path().is_some() {
                // The stop's savepoint is recorded; the job should be ending. Cancelling is safe.
                cancel(cx, info);
            } else if info.state != FlinkJobState::Running {
                let why = format!("a savepoint needs the job to run, and it is {}", info.state);
                if !plan_builder::retains_checkpoints_on_cancel(running_spec) {
                    return Err(format!(
                        "{why}; it is retried when the job runs (or choose upgradeMode \
                         stateless)"
                    ));
                }
                fallback_to_checkpoint(cx, &why)?;
                cancel(cx, info);
            } else {
                let call = savepoint_call(cx, running_spec, info.id.clone(), false);
                record_trigger(cx, &call, SnapshotTriggerType::Upgrade);
                cx.act(Action::StopWithSavepoint(call));
                cx.soon();
            }
            Ok(())
        }
        UpgradeMode::LastState => {
            if cx.trigger_pending() {
                // A savepoint taken because the newest checkpoint was too old.
                cx.soon();
                return Ok(());
            }
            if cx.restore_path().is_none() {
                let Some(checkpoint) = usable_checkpoint(cx) else {
                    return Err(format!(
                        "no completed checkpoint of job {} can be proven to exist yet; the \
                         upgrade continues once one completes",
                        info.id
                    ));
                };
                if let Some(too_old) = checkpoint_too_old(cx, &checkpoint) {
                    return savepoint_instead(cx, info, running_spec, &too_old);
                }
                cx.set_restore_path(Some(checkpoint.path));
            }
            cancel(cx, info);
            Ok(())
        }
    }
}

/// The old job has ended or is gone, and its cluster still exists: record its state, then
/// delete the cluster.
fn ended(cx: &mut Cx<'_>, mode: UpgradeMode, why: &str) -> Result<(), String> {
    if mode == UpgradeMode::Savepoint && cx.trigger_pending() {
        if matches!(cx.obs.cluster, ClusterObservation::Running { .. }) {
            cx.soon();
            return Ok(());
        }
        // The JobManager that ran the savepoint is gone; its result can never be read.
        let info = cx.savepoint_info();
        info.trigger_id = None;
        info.trigger_timestamp = None;
        info.trigger_type = None;
        info.format_type = None;
    }
    require_state(cx, mode, why)?;
    cx.act(Action::DeleteCluster);
    cx.soon();
    Ok(())
}

/// Makes sure the restore path of a stateful mode is recorded: for last-state, the newest
/// checkpoint that can be proven to exist is recorded (it may be newer than the one recorded
/// before the cancel).
fn require_state(cx: &mut Cx<'_>, mode: UpgradeMode, why: &str) -> Result<(), String> {
    match mode {
        UpgradeMode::Stateless => Ok(()),
        UpgradeMode::Savepoint => match cx.restore_path() {
            // A fallback to last-state recorded a checkpoint: a newer one may have completed
            // since (as for last-state stops).
            Some(recorded) if checkpoint_id(&recorded).is_some() => {
                if let Some(checkpoint) = usable_checkpoint(cx)
                    && super::recovery::checkpoint_is_newer(cx, &checkpoint, &recorded)
                {
                    cx.set_restore_path(Some(checkpoint.path));
                }
                Ok(())
            }
            Some(_) => Ok(()),
            None => fallback_to_checkpoint(cx, &format!("{why} and no savepoint of it was taken")),
        },
        UpgradeMode::LastState => {
            if let Some(checkpoint) = usable_checkpoint(cx) {
                let newer = match cx.restore_path() {
                    None => true,
                    Some(recorded) => {
                        super::recovery::checkpoint_is_newer(cx, &checkpoint, &recorded)
                    }
                };
                if newer {
                    cx.set_restore_path(Some(checkpoint.path));
                }
            }
            match cx.restore_path() {
                Some(_) => Ok(()),
                None => Err(format!(
                    "{why} and no completed checkpoint of it can be proven to exist; nothing \
                     was deleted. Choose upgradeMode stateless to start empty, or set \
                     spec.job.initialSavepointPath and savepointRedeployNonce"
                )),
            }
        }
    }
}

/// A savepoint upgrade of a job that cannot take a savepoint (`why`) restores its newest
/// checkpoint instead when `kubernetes.operator.job.upgrade.last-state-fallback.enabled`
/// (default true, as in the Apache operator); it never falls back to empty state.
fn fallback_to_checkpoint(cx: &mut Cx<'_>, why: &str) -> Result<(), String> {
    if !cx.option_bool(LAST_STATE_FALLBACK, true) {
        return Err(format!(
            "{why}, and {LAST_STATE_FALLBACK} is false; choose upgradeMode last-state to \
             restore from its latest checkpoint, or stateless to start empty"
        ));
    }
    let Some(checkpoint) = usable_checkpoint(cx) else {
        return Err(format!(
            "{why}, and no completed checkpoint of it can be proven to exist to fall back to; \
             nothing was deleted. Choose upgradeMode stateless to start empty, or set \
             spec.job.initialSavepointPath and savepointRedeployNonce"
        ));
    };
    cx.events.push(Event::warning(
        EventReason::SpecChanged,
        format!(
            "{why}: falling back to last-state ({LAST_STATE_FALLBACK}), the job will restore \
             checkpoint {} ({})",
            checkpoint.id, checkpoint.path
        ),
    ));
    cx.set_restore_path(Some(checkpoint.path));
    Ok(())
}

/// Why `checkpoint` is too old for a last-state upgrade
/// (`kubernetes.operator.job.upgrade.last-state.max.allowed.checkpoint.age`), or `None`.
fn checkpoint_too_old(cx: &Cx<'_>, checkpoint: &CheckpointRef) -> Option<String> {
    let max = cx.option_duration(LAST_STATE_MAX_AGE)?;
    if checkpoint.timestamp_ms <= 0 {
        return None;
    }
    let age_ms = cx.now_ms.saturating_sub(checkpoint.timestamp_ms).max(0);
    let age = std::time::Duration::from_millis(u64::try_from(age_ms).unwrap_or(0));
    (age > max).then(|| {
        format!(
            "the newest checkpoint ({}, {}) is {} old, more than {LAST_STATE_MAX_AGE} ({})",
            checkpoint.id,
            checkpoint.path,
            human(age),
            human(max)
        )
    })
}

/// A last-state upgrade whose newest checkpoint is too old: wait for a checkpoint in
/// progress, or else stop the job with a savepoint (as the Apache operator does).
fn savepoint_instead(
    cx: &mut Cx<'_>,
    info: &JobInfo,
    running_spec: &FlinkDeploymentSpec,
    too_old: &str,
) -> Result<(), String> {
    if cx.obs.progress.pending_checkpoint_ms.is_some() {
        cx.soon();
        return Ok(());
    }
    if info.state != FlinkJobState::Running {
        return Err(format!(
            "{too_old}, and the job is {}, so no savepoint can be taken instead",
            info.state
        ));
    }
    cx.events.push(Event::normal(
        EventReason::SpecChanged,
        format!("{too_old}; stopping the job with a savepoint instead"),
    ));
    let call = savepoint_call(cx, running_spec, info.id.clone(), false);
    record_trigger(cx, &call, SnapshotTriggerType::Upgrade);
    cx.act(Action::StopWithSavepoint(call));
    cx.soon();
    Ok(())
}

/// The observed latest checkpoint, unless storage says it is not there.
fn usable_checkpoint(cx: &Cx<'_>) -> Option<CheckpointRef> {
    cx.obs
        .latest_checkpoint
        .clone()
        .filter(|c| c.on_storage != Some(false))
}

/// The id in a `…/chk-N` path.
pub(super) fn checkpoint_id(path: &str) -> Option<u64> {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()?
        .strip_prefix("chk-")?
        .parse()
        .ok()
}

fn cancel(cx: &mut Cx<'_>, info: &JobInfo) {
    if info.state != FlinkJobState::Cancelling {
        cx.act(Action::CancelJob {
            job_id: info.id.clone(),
        });
    }
    cx.soon();
}

/// The old cluster is gone and the state is recorded: suspend for good, or deploy the desired
/// spec from the recorded path.
pub(super) fn after_stop(cx: &mut Cx<'_>, first_deployment: bool) {
    if !cx.validate() {
        return;
    }
    if is_suspended(cx.desired) {
        suspend::finish(cx);
        return;
    }
    let desired = cx.desired.clone();
    let restore = cx.restore_path();
    deploy::begin(cx, &desired, restore, first_deployment);
}

#[cfg(test)]
mod tests {
    use super::checkpoint_id;

    #[test]
    fn checkpoint_ids_are_read_from_paths() {
        assert_eq!(checkpoint_id("file:/cp/abc/chk-12"), Some(12));
        assert_eq!(checkpoint_id("file:/cp/abc/chk-12/"), Some(12));
        assert_eq!(checkpoint_id("file:/sp/savepoint-1"), None);
    }
}
