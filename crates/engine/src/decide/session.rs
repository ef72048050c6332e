//! Session clusters: a `FlinkDeployment` without `spec.job` runs a cluster that accepts jobs
//! (`FlinkSessionJob`s, `flink run`, the REST API) instead of running one of its own.
//!
//! As in the Apache operator:
//! - the first deployment records the target (`UPGRADING`), then deploys; the cluster is
//!   `STABLE` once its JobManager's REST API answers (`jobManagerDeploymentStatus: READY`);
//! - a spec change replaces the cluster: the new target is recorded (`UPGRADING`), the old
//!   cluster is deleted, then the new one is deployed. Jobs running on it end with it (their
//!   `FlinkSessionJob`s resubmit them); a session cluster keeps no state of its own;
//! - in standalone mode a change of `taskManager.replicas` only scales the TaskManagers;
//! - TaskManagers that died are started again where the platform does not do it
//!   (`Settings::restart_lost_taskmanagers`, local), as for applications;
//! - there is no `suspended` state (it belongs to `spec.job`).
//!
//! Deletion (the same step as for applications, in `delete`) removes the cluster. The Apache
//! operator keeps a session cluster while `FlinkSessionJob`s name it; that check needs the
//! session jobs, which only the Kubernetes controller sees, so it lives there.
//!
//! The write-ahead record is the same as for applications: `UPGRADING` with the target spec
//! means "the cluster of this spec is being deployed"; a cluster whose plan hash is not the
//! target's is deleted first, so a crash at any point converges on one cluster of the target.

use api::reconciled::ReconciledSpec;
use api::{ChangeKind, DeploymentMode, FlinkDeploymentSpec, ReconciliationState};

use super::options::JM_RECOVERY;
use super::{Cx, is_first_deployment, recovery};
use crate::action::{Action, Event, EventReason};
use crate::observation::ClusterObservation;
use crate::plan::ClusterPlan;
use crate::plan_builder::{self, PlanInput};

/// One step of a session cluster (not being deleted). `target` is the recorded spec, if any.
pub(super) fn step(cx: &mut Cx<'_>, target: Option<ReconciledSpec<FlinkDeploymentSpec>>) {
    // A session cluster runs no job: what a deploy folds into jobStatus is not its own.
    cx.status.job_status = None;
    let Some(target) = target else {
        if cx.validate() {
            let desired = cx.desired.clone();
            begin(cx, &desired, true);
        }
        return;
    };
    let upgrading = cx
        .status
        .reconciliation_status
        .as_ref()
        .is_some_and(|r| r.state() == ReconciliationState::Upgrading);
    if upgrading {
        in_flight(cx, &target);
    } else {
        running(cx, &target);
    }
}

/// The plan of a session cluster of `spec` (no job, so no job id and no restore path).
fn plan(cx: &mut Cx<'_>, spec: &FlinkDeploymentSpec) -> Option<ClusterPlan> {
    let input = PlanInput {
        key: &cx.key,
        owner_uid: cx.resource.metadata.uid.as_deref(),
        spec,
        job_id: "",
        restore: None,
    };
    match plan_builder::build(input, cx.settings) {
        Ok(plan) => Some(plan),
        Err(e) => {
            cx.set_error(
                EventReason::ValidationError,
                format!("{}{e}", super::INVALID_SPEC),
            );
            None
        }
    }
}

/// Records `spec` as the target being deployed (`UPGRADING`), then deploys it — or, when a
/// cluster of another spec still runs, deletes that first.
fn begin(cx: &mut Cx<'_>, spec: &FlinkDeploymentSpec, first_deployment: bool) {
    let Some(plan) = plan(cx, spec) else {
        return;
    };
    if !cx.set_target(spec, first_deployment) {
        return;
    }
    cx.recon().state = Some(ReconciliationState::Upgrading);
    if other_cluster(cx, &plan).is_some() {
        cx.act(Action::DeleteCluster);
    } else {
        cx.events.push(Event::normal(
            EventReason::Submit,
            "Deploying the session cluster".to_string(),
        ));
        cx.act(Action::Deploy(Box::new(plan)));
    }
    cx.soon();
}

/// `UPGRADING`: the target's cluster is being deployed. Deploys it again (a no-op when it
/// runs), after deleting a cluster of another plan; a spec changed meanwhile becomes the target.
fn in_flight(cx: &mut Cx<'_>, target: &ReconciledSpec<FlinkDeploymentSpec>) {
    let diff = api::diff(&target.spec, cx.desired);
    if diff.kind != ChangeKind::Ignore && cx.validate() {
        cx.events.push(Event::normal(
            EventReason::SpecChanged,
            format!("Spec changed while deploying: {diff}; deploying the new spec instead"),
        ));
        let desired = cx.desired.clone();
        begin(cx, &desired, is_first_deployment(target));
        return;
    }
    let Some(plan) = plan(cx, &target.spec) else {
        return;
    };
    if other_cluster(cx, &plan).is_some() {
        cx.act(Action::DeleteCluster);
    } else {
        cx.act(Action::Deploy(Box::new(plan)));
    }
    cx.soon();
}

/// `DEPLOYED`: observe; apply a spec change.
fn running(cx: &mut Cx<'_>, target: &ReconciledSpec<FlinkDeploymentSpec>) {
    let diff = api::diff(&target.spec, cx.desired);
    if diff.kind == ChangeKind::Ignore {
        if cx.validate() && !diff.changes.is_empty() {
            let desired = cx.desired.clone();
            cx.set_target(&desired, is_first_deployment(target));
        }
        if !recover(cx, target) {
            // TaskManagers that died are started again where nothing else does (local), so
            // the session's jobs have slots to be restarted or resubmitted on.
            recovery::restore_taskmanagers(cx, &target.spec);
            steady(cx);
        }
        return;
    }
    if !cx.validate() {
        steady(cx);
        return;
    }
    if diff.kind == ChangeKind::Scale && cx.desired.mode() == DeploymentMode::Standalone {
        // a standalone session cluster schedules its jobs on whatever TaskManagers there are
        super::upgrade::scale(cx, target, "the session cluster");
        return;
    }
    cx.events.push(Event::normal(
        EventReason::SpecChanged,
        format!("Spec changed: {diff}; redeploying the session cluster"),
    ));
    let desired = cx.desired.clone();
    begin(cx, &desired, false);
}

/// A JobManager that is gone (`jm-deployment-recovery.enabled`, default true) is deployed
/// again, as the Apache operator recovers session clusters: the target is recorded
/// (`UPGRADING`), what is left of the cluster deleted, then the same spec deployed. The jobs
/// that ran on it are gone with it; their `FlinkSessionJob`s submit them again. Returns
/// `true` when it took over the pass.
fn recover(cx: &mut Cx<'_>, target: &ReconciledSpec<FlinkDeploymentSpec>) -> bool {
    let Some(why) = recovery::jobmanager_lost(cx) else {
        return false;
    };
    if !cx.jm_recovery_enabled() {
        if !recovery::loss_reported(cx) {
            cx.events.push(Event::warning(
                EventReason::Missing,
                format!("{why}; it is not recovered because {JM_RECOVERY} is false"),
            ));
        }
        return false;
    }
    if !cx.set_target(&target.spec, is_first_deployment(target)) {
        return true;
    }
    cx.recon().state = Some(ReconciliationState::Upgrading);
    cx.events.push(Event::warning(
        EventReason::RecoverDeployment,
        format!(
            "{why}; deploying the session cluster again (FlinkSessionJobs submit their jobs \
             again once it is READY)"
        ),
    ));
    if matches!(cx.obs.cluster, ClusterObservation::Absent) {
        if let Some(plan) = plan(cx, &target.spec) {
            cx.act(Action::Deploy(Box::new(plan)));
        }
    } else {
        cx.act(Action::DeleteCluster);
    }
    cx.soon();
    true
}

/// The steady state: stable once the JobManager answers.
fn steady(cx: &mut Cx<'_>) {
    let ready =
        cx.status.job_manager_deployment_status == Some(api::JobManagerDeploymentStatus::Ready);
    if ready {
        let recon = cx.recon();
        if !recon.is_last_reconciled_spec_stable() {
            recon.mark_reconciled_spec_stable();
        }
        return;
    }
    if matches!(
        cx.obs.cluster,
        ClusterObservation::Starting { .. } | ClusterObservation::Running { .. }
    ) {
        cx.soon();
    }
}

/// The plan hash of a cluster that exists and is not the one of `plan` (`""` when it has none,
/// e.g. one deployed by another operator), if any.
fn other_cluster(cx: &Cx<'_>, plan: &ClusterPlan) -> Option<String> {
    let observed = match &cx.obs.cluster {
        ClusterObservation::Absent => return None,
        ClusterObservation::Starting { plan_hash }
        | ClusterObservation::Running { plan_hash, .. }
        | ClusterObservation::Failed { plan_hash, .. } => plan_hash.as_deref(),
    };
    match observed {
        Some(hash) if hash == plan.plan_hash => None,
        other => Some(other.unwrap_or_default().to_string()),
    }
}
