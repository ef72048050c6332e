//! Rollback (`kubernetes.operator.deployment.rollback.enabled`): an upgrade that has not
//! become stable within `kubernetes.operator.deployment.readiness.timeout` is rolled back to
//! `lastStableSpec`, with the newest state of the failing job.
//!
//! As in the Apache operator, `lastReconciledSpec` keeps the spec that failed (so the same
//! spec is not tried again until the user changes it) and the reconciliation state says what
//! runs: `ROLLING_BACK` while the stable spec is being deployed, `ROLLED_BACK` once it is.
//! In both states the spec that runs is `lastStableSpec` ([`deployed_spec`]).

use std::time::Duration;

use api::{FlinkDeploymentSpec, ReconciliationState};

use super::options::{READINESS_TIMEOUT, ROLLBACK, human};
use super::recovery::{self, RECOVERY_BLOCKED};
use super::{Cx, is_suspended, upgrade_mode};
use crate::action::{Event, EventReason};

/// The Apache operator's default readiness timeout.
const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(300);

/// The spec that runs when it is not `lastReconciledSpec`: `lastStableSpec` while rolling
/// back or rolled back.
pub(crate) fn deployed_spec(status: &api::FlinkDeploymentStatus) -> Option<FlinkDeploymentSpec> {
    let recon = status.reconciliation_status.as_ref()?;
    if !matches!(
        recon.state(),
        ReconciliationState::RollingBack | ReconciliationState::RolledBack
    ) {
        return None;
    }
    recon
        .last_stable::<FlinkDeploymentSpec>()
        .ok()
        .flatten()
        .map(|r| r.spec)
}

/// Starts a rollback when the deployed upgrade did not become stable in time. Returns `true`
/// when it took over the pass.
pub(super) fn check(cx: &mut Cx<'_>) -> bool {
    let Some(why) = overdue(cx) else {
        return false;
    };
    let Some(stable) = cx
        .status
        .reconciliation_status
        .as_ref()
        .and_then(|r| r.last_stable::<FlinkDeploymentSpec>().ok().flatten())
        .map(|r| r.spec)
    else {
        return false;
    };
    let mode = upgrade_mode(cx.desired);
    let state = match recovery::newest_state(cx, mode, true) {
        Ok(state) => state,
        Err(e) => {
            cx.set_error(
                EventReason::Rollback,
                format!(
                    "{RECOVERY_BLOCKED}{why}, but {e}; nothing was deleted. Change the spec to \
                     fix the upgrade"
                ),
            );
            return true;
        }
    };
    let from = recovery::describe(&state);
    cx.events.push(Event::warning(
        EventReason::Rollback,
        format!("{why}; rolling back to the last stable spec {from}"),
    ));
    recovery::record_redeploy(cx, state.map(|s| s.path), true);
    cx.status.error = Some(format!("{why}; rolled back to the last stable spec"));
    cx.error_raised = true;
    recovery::first_step(cx, &stable);
    true
}

/// Why the deployed spec is overdue for a rollback, or `None`: rollback is enabled, the
/// spec deployed last is not stable, a stable spec that runs a job exists, and the readiness
/// timeout has passed since the deploy.
fn overdue(cx: &Cx<'_>) -> Option<String> {
    if !cx.option_bool(ROLLBACK, false) {
        return None;
    }
    let recon = cx.status.reconciliation_status.as_ref()?;
    if recon.state() != ReconciliationState::Deployed || recon.is_last_reconciled_spec_stable() {
        return None;
    }
    let stable = recon
        .last_stable::<FlinkDeploymentSpec>()
        .ok()
        .flatten()?
        .spec;
    if is_suspended(&stable) {
        return None;
    }
    let timeout = cx
        .option_duration(READINESS_TIMEOUT)
        .unwrap_or(DEFAULT_READINESS_TIMEOUT);
    let deployed_at = recon.reconciliation_timestamp?;
    let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    if cx.now_ms < deployed_at.saturating_add(timeout_ms) {
        return None;
    }
    let job = cx
        .observed_job()
        .map(|j| {
            let tasks = if j.all_tasks_running == Some(false) {
                ", not all tasks running"
            } else {
                ""
            };
            format!("job {} is {}{tasks}", j.id, j.state)
        })
        .unwrap_or_else(|| "the JobManager does not report the job".to_string());
    Some(format!(
        "The upgraded deployment did not become stable within {} ({READINESS_TIMEOUT}; {job})",
        human(timeout)
    ))
}
