//! Bringing a job up: the first deployment, and the deploy step that ends every upgrade and
//! resume. The write-ahead record is `UPGRADING` with the target `running`, the new job id and
//! the restore path; a crash after it leaves a "deploy in flight" that the next pass finishes.

use api::reconciled::ReconciledSpec;
use api::{FlinkDeploymentSpec, ReconciliationState};

use super::{
    Cx, is_first_deployment, is_suspended, running_copy, state_keeping_mode, upgrade_mode,
};
use crate::action::{Action, Event, EventReason};
use crate::observation::{ClusterObservation, JobObservation};
use crate::plan_builder::{self, PlanInput};

/// No spec was reconciled yet.
pub(super) fn new(cx: &mut Cx<'_>) {
    if !cx.validate() {
        return;
    }
    let desired = cx.desired.clone();
    if is_suspended(&desired) {
        // Created suspended: nothing to run, the spec is recorded as deployed (and stable).
        if cx.set_target(&desired, true) {
            let recon = cx.recon();
            recon.state = Some(ReconciliationState::Deployed);
            recon.mark_reconciled_spec_stable();
        }
        return;
    }
    let restore = initial_savepoint(&desired);
    begin(cx, &desired, restore, true);
}

/// `spec.job.initialSavepointPath`, when set.
pub(super) fn initial_savepoint(spec: &FlinkDeploymentSpec) -> Option<String> {
    spec.job
        .as_ref()?
        .initial_savepoint_path
        .clone()
        .filter(|p| !p.trim().is_empty())
}

/// Records the deployment of `spec` (write-ahead: target running, `UPGRADING`, new job id,
/// restore path) and deploys it.
pub(super) fn begin(
    cx: &mut Cx<'_>,
    spec: &FlinkDeploymentSpec,
    restore: Option<String>,
    first_deployment: bool,
) {
    let spec = running_copy(spec);
    let job_id = cx.fresh.job_id.clone();
    let plan = plan_builder::build(
        PlanInput {
            key: &cx.key,
            owner_uid: cx.resource.metadata.uid.as_deref(),
            spec: &spec,
            job_id: &job_id,
            restore: restore.as_deref(),
        },
        cx.settings,
    );
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => {
            cx.set_error(
                EventReason::ValidationError,
                format!("{}{e}", super::INVALID_SPEC),
            );
            return;
        }
    };
    if !cx.set_target(&spec, first_deployment) {
        return;
    }
    cx.recon().state = Some(ReconciliationState::Upgrading);
    let js = cx.job_status();
    js.job_id = Some(job_id.clone());
    js.upgrade_savepoint_path = restore.clone();
    let from = match &restore {
        Some(path) => format!("restoring state from {path}"),
        None => "with empty state".to_string(),
    };
    cx.events.push(Event::normal(
        EventReason::Submit,
        format!("Deploying job {job_id} {from}"),
    ));
    cx.act(Action::Deploy(Box::new(plan)));
    cx.soon();
}

/// `UPGRADING` with the target running: the deploy was recorded and may or may not have
/// happened. Deploying the same plan again is a no-op when it did, so it is simply repeated —
/// unless the spec changed meanwhile and nothing runs yet, then the new spec is deployed
/// instead (from the same recorded state).
pub(super) fn in_flight(cx: &mut Cx<'_>, target: &ReconciledSpec<FlinkDeploymentSpec>) {
    let changed = api::diff(&target.spec, cx.desired).kind != api::ChangeKind::Ignore;
    if changed {
        match cx.obs.cluster {
            ClusterObservation::Absent => {
                super::upgrade::after_stop(cx, is_first_deployment(target));
                return;
            }
            ClusterObservation::Failed { .. } => {
                // A deploy whose JobManager died, replaced by a new spec: remove it first,
                // after recording the newest state of its job (it may have run and completed
                // checkpoints before it died; else it is the state it started from). That job
                // runs in the recorded mode: a new spec saying stateless does not drop it.
                if cx.validate() {
                    let mode =
                        state_keeping_mode(upgrade_mode(&target.spec), upgrade_mode(cx.desired));
                    match super::recovery::newest_state(cx, mode, true) {
                        Ok(Some(state)) => cx.set_restore_path(Some(state.path)),
                        Ok(None) => {}
                        Err(e) => {
                            cx.set_error(
                                EventReason::UpgradeBlocked,
                                format!("{}{e}; nothing was deleted", super::upgrade::BLOCKED),
                            );
                            return;
                        }
                    }
                    cx.act(Action::DeleteCluster);
                    cx.soon();
                }
                return;
            }
            _ => {}
        }
    }
    let spec = super::rollback::deployed_spec(&cx.status).unwrap_or_else(|| target.spec.clone());
    deploy_recorded(cx, &spec);
}

/// Deploys `spec` as recorded: the recorded job id and restore path (idempotent). A cluster
/// left from before the record (another plan, not running the recorded job: a restart or
/// rollback recorded its redeploy and the pass ended before the delete) is deleted first.
pub(super) fn deploy_recorded(cx: &mut Cx<'_>, spec: &FlinkDeploymentSpec) {
    let job_id = match cx.job_id() {
        Some(id) => id,
        None => {
            let id = cx.fresh.job_id.clone();
            cx.job_status().job_id = Some(id.clone());
            id
        }
    };
    let restore = cx.restore_path();
    let plan = plan_builder::build(
        PlanInput {
            key: &cx.key,
            owner_uid: cx.resource.metadata.uid.as_deref(),
            spec,
            job_id: &job_id,
            restore: restore.as_deref(),
        },
        cx.settings,
    );
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => {
            cx.set_error(
                EventReason::ValidationError,
                format!("{}{e}", super::INVALID_SPEC),
            );
            return;
        }
    };
    let stale = match &cx.obs.cluster {
        ClusterObservation::Absent => false,
        ClusterObservation::Starting { plan_hash } => {
            plan_hash.as_ref().is_some_and(|h| *h != plan.plan_hash)
        }
        ClusterObservation::Failed { plan_hash, .. } => {
            plan_hash.as_ref().is_some_and(|h| *h != plan.plan_hash)
        }
        ClusterObservation::Running { plan_hash, .. } => {
            plan_hash.as_ref().is_some_and(|h| *h != plan.plan_hash)
                && matches!(cx.obs.job, JobObservation::NotFound)
        }
    };
    if stale {
        cx.act(Action::DeleteCluster);
    } else {
        cx.act(Action::Deploy(Box::new(plan)));
    }
    cx.soon();
}
