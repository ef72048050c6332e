//! Bringing a job up: the first deployment, and the deploy step that ends every upgrade and
//! resume. The write-ahead record is `UPGRADING` with the target `running`, the new job id and
//! the restore path; a crash after it leaves a "deploy in flight" that the next pass finishes.

use api::reconciled::ReconciledSpec;
use api::{FlinkDeploymentSpec, ReconciliationState};

use super::{Cx, is_first_deployment, is_suspended, running_copy};
use crate::action::{Action, Event, EventReason};
use crate::observation::ClusterObservation;
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
                // A deploy that never came up, replaced by a new spec: remove it first. The
                // state it started from is still the recorded restore path.
                if cx.validate() {
                    cx.act(Action::DeleteCluster);
                    cx.soon();
                }
                return;
            }
            _ => {}
        }
    }
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
            spec: &target.spec,
            job_id: &job_id,
            restore: restore.as_deref(),
        },
        cx.settings,
    );
    match plan {
        Ok(plan) => {
            cx.act(Action::Deploy(Box::new(plan)));
            cx.soon();
        }
        Err(e) => cx.set_error(
            EventReason::ValidationError,
            format!("{}{e}", super::INVALID_SPEC),
        ),
    }
}
