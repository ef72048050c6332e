//! Tests of `decide`: one table of transitions per phase, and properties over random sequences.

mod props;
mod recovery;
mod session;
mod snapshots;
mod stops;
mod transitions;

use std::time::Duration;

use api::reconciled::ReconciliationMetadata;
use api::{
    FlinkDeployment, FlinkDeploymentSpec, FlinkJobState, JobStatus, ReconciliationState,
    ReconciliationStatus, UpgradeMode,
};

use super::*;
use crate::observation::*;

pub(super) const NOW: i64 = 1_800_000_000_000;
pub(super) const OLD_JOB: &str = "00000000000000000000000000000001";
pub(super) const NEW_JOB: &str = "0000000000000000000000000000000f";
pub(super) const TRIGGER: &str = "000000000000000000000000000000aa";

/// The actions of a decision that act on the job or cluster (not snapshot resources).
pub(super) fn job_actions(d: &Decision) -> Vec<Action> {
    d.actions
        .iter()
        .filter(|a| !matches!(a, Action::CreateSnapshotResource(_)))
        .cloned()
        .collect()
}

pub(super) fn settings() -> Settings {
    Settings {
        observe_interval: Duration::from_secs(2),
        transition_interval: Duration::from_millis(100),
        retry_interval: Duration::from_secs(10),
        ..Settings::default()
    }
}

pub(super) fn fresh() -> FreshIds {
    FreshIds {
        job_id: NEW_JOB.into(),
        trigger_id: TRIGGER.into(),
    }
}

/// A valid application with state directories, in `mode`.
pub(super) fn app(mode: UpgradeMode) -> FlinkDeployment {
    FlinkDeployment::test("counter")
        .application()
        .with_upgrade_mode(mode)
        .with_state_dirs("file:///fp")
}

/// `d` as after a successful deployment of its current spec, running job `OLD_JOB`.
pub(super) fn deployed(d: FlinkDeployment) -> FlinkDeployment {
    let mut d = d.deployed();
    let status = d.status.get_or_insert_with(Default::default);
    status.job_status = Some(JobStatus {
        job_id: Some(OLD_JOB.into()),
        state: Some(FlinkJobState::Running),
        ..Default::default()
    });
    status.job_manager_deployment_status = Some(api::JobManagerDeploymentStatus::Ready);
    d
}

/// Records `spec` as target with reconciliation state `state`.
pub(super) fn with_target(
    mut d: FlinkDeployment,
    spec: &FlinkDeploymentSpec,
    state: ReconciliationState,
) -> FlinkDeployment {
    let status = d.status.get_or_insert_with(Default::default);
    let recon = status
        .reconciliation_status
        .get_or_insert_with(ReconciliationStatus::default);
    recon
        .set_last_reconciled(spec, &ReconciliationMetadata::new(Some(1), false))
        .unwrap();
    recon.state = Some(state);
    d
}

pub(super) fn set_path(mut d: FlinkDeployment, path: Option<&str>) -> FlinkDeployment {
    d.status
        .get_or_insert_with(Default::default)
        .job_status
        .get_or_insert_with(Default::default)
        .upgrade_savepoint_path = path.map(str::to_string);
    d
}

pub(super) fn set_trigger(mut d: FlinkDeployment, trigger: &str) -> FlinkDeployment {
    let sp = d
        .status
        .get_or_insert_with(Default::default)
        .job_status
        .get_or_insert_with(Default::default)
        .savepoint_info
        .get_or_insert_with(Default::default);
    sp.trigger_id = Some(trigger.into());
    sp.trigger_type = Some(api::SnapshotTriggerType::Upgrade);
    sp.trigger_timestamp = Some(NOW - 1000);
    d
}

pub(super) fn job(id: &str, state: FlinkJobState) -> JobObservation {
    JobObservation::Found(JobInfo {
        id: id.into(),
        name: "counter".into(),
        state,
        start_time_ms: NOW - 60_000,
        update_time_ms: NOW - 1_000,
        all_tasks_running: Some(true),
    })
}

pub(super) fn running_cluster(job: JobObservation) -> Observation {
    Observation {
        cluster: ClusterObservation::Running {
            plan_hash: None,
            taskmanagers: 1,
        },
        job,
        trigger: None,
        latest_checkpoint: None,
        failure_cause: None,
        snapshots: Default::default(),
        progress: Default::default(),
    }
}

pub(super) fn absent() -> Observation {
    Observation {
        cluster: ClusterObservation::Absent,
        job: JobObservation::Unknown {
            reason: "no cluster".into(),
        },
        trigger: None,
        latest_checkpoint: None,
        failure_cause: None,
        snapshots: Default::default(),
        progress: Default::default(),
    }
}

pub(super) fn checkpoint(id: u64, on_storage: Option<bool>) -> CheckpointRef {
    CheckpointRef {
        id,
        path: format!("file:/fp/checkpoints/{OLD_JOB}/chk-{id}"),
        timestamp_ms: NOW - 500,
        on_storage,
    }
}

pub(super) fn run(d: &FlinkDeployment, obs: &Observation) -> Decision {
    decide(DecideInput {
        resource: d,
        observation: obs,
        settings: &settings(),
        now_ms: NOW,
        fresh: &fresh(),
    })
}

/// `d` with the decision's status persisted.
pub(super) fn persisted(d: &FlinkDeployment, decision: &Decision) -> FlinkDeployment {
    let mut d = d.clone();
    d.status = Some(decision.status.clone());
    d
}

/// `d` with the decision's status persisted and every action folded in as done.
pub(super) fn acted(d: &FlinkDeployment, decision: &Decision) -> FlinkDeployment {
    let mut status = decision.status.clone();
    for action in &decision.actions {
        status = apply_outcome(&status, action, &crate::action::Outcome::Done, NOW).0;
    }
    let mut d = d.clone();
    d.status = Some(status);
    d
}

pub(super) fn target_of(d: &FlinkDeployment) -> FlinkDeploymentSpec {
    target_spec(d.status.as_ref().unwrap()).unwrap()
}

pub(super) fn recon_state(d: &Decision) -> Option<ReconciliationState> {
    d.status
        .reconciliation_status
        .as_ref()
        .and_then(|r| r.state)
}

pub(super) fn path_of(d: &Decision) -> Option<String> {
    d.status
        .job_status
        .as_ref()
        .and_then(|j| j.upgrade_savepoint_path.clone())
}

pub(super) fn trigger_of(d: &Decision) -> Option<String> {
    d.status
        .job_status
        .as_ref()
        .and_then(|j| j.savepoint_info.as_ref())
        .and_then(|s| s.trigger_id.clone())
}
