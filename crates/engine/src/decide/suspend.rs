//! A suspended deployment: nothing runs; the state it was suspended with stays recorded in
//! `upgradeSavepointPath` until it is resumed.

use api::reconciled::ReconciledSpec;
use api::{FlinkDeploymentSpec, ReconciliationState, UpgradeMode};

use super::{Cx, deploy, is_first_deployment, is_suspended, upgrade_mode};
use crate::action::{Event, EventReason};

/// `DEPLOYED` with the target suspended.
pub(super) fn suspended(cx: &mut Cx<'_>, target: &ReconciledSpec<FlinkDeploymentSpec>) {
    let first = is_first_deployment(target) && cx.job_id().is_none();
    if is_suspended(cx.desired) {
        // Still suspended: record other changes so the resume deploys them.
        let changed = !api::diff(&target.spec, cx.desired).changes.is_empty();
        if cx.validate() && changed {
            let desired = cx.desired.clone();
            cx.set_target(&desired, is_first_deployment(target));
        }
        return;
    }
    if !cx.validate() {
        return;
    }
    let restore = if first {
        deploy::initial_savepoint(cx.desired)
    } else if upgrade_mode(cx.desired) == UpgradeMode::Stateless {
        None
    } else {
        cx.restore_path()
    };
    let desired = cx.desired.clone();
    deploy::begin(cx, &desired, restore, first);
}

/// The job was stopped for a suspension and its cluster is gone: record the suspended spec as
/// deployed (the Apache operator marks a user's suspension stable).
pub(super) fn finish(cx: &mut Cx<'_>) {
    let desired = cx.desired.clone();
    if !cx.set_target(&desired, false) {
        return;
    }
    let recon = cx.recon();
    recon.state = Some(ReconciliationState::Deployed);
    recon.mark_reconciled_spec_stable();
    let kept = match cx.restore_path() {
        Some(path) => format!("its state is kept at {path}"),
        None => "no state was kept (stateless)".to_string(),
    };
    cx.clear_error();
    cx.events.push(Event::normal(
        EventReason::Suspended,
        format!("Job suspended; {kept}"),
    ));
}
