//! One test per transition of the phase table in `docs/engine.md` §3: new, deploying,
//! running (the stopping transitions are in `stops.rs`).

use api::{
    DeploymentMode, FlinkJobState, JobManagerDeploymentStatus, JobState, ReconciliationState,
    ResourceLifecycleState, SnapshotTriggerType, UpgradeMode,
};
use rstest::rstest;

use super::*;
use crate::action::{Action, EventReason, Outcome};

pub(super) fn deploy_plan(d: &Decision) -> &crate::plan::ClusterPlan {
    match d.actions.as_slice() {
        [Action::Deploy(plan)] => plan,
        other => panic!("expected one Deploy, got {other:?}"),
    }
}

pub(super) fn lifecycle(d: &Decision) -> ResourceLifecycleState {
    d.status.lifecycle_state.unwrap()
}

pub(super) fn with_args(mut d: FlinkDeployment, args: &[&str]) -> FlinkDeployment {
    d.spec.job.as_mut().unwrap().args = Some(args.iter().map(|s| s.to_string()).collect());
    d
}

// ---- New ------------------------------------------------------------------------------------

#[test]
fn new_deployment_records_upgrading_target_and_job_id_then_deploys() {
    let d = app(UpgradeMode::Savepoint);
    let decision = run(&d, &absent());
    let plan = deploy_plan(&decision);
    assert_eq!(plan.job.as_ref().unwrap().job_id, NEW_JOB);
    assert_eq!(plan.job.as_ref().unwrap().restore, None);
    assert_eq!(recon_state(&decision), Some(ReconciliationState::Upgrading));
    assert_eq!(
        decision
            .status
            .job_status
            .as_ref()
            .unwrap()
            .job_id
            .as_deref(),
        Some(NEW_JOB)
    );
    let target = target_spec(&decision.status).unwrap();
    assert_eq!(target.job.unwrap().state(), JobState::Running);
    assert_eq!(lifecycle(&decision), ResourceLifecycleState::Upgrading);
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.reason == EventReason::Submit)
    );
    assert_eq!(decision.requeue_after, settings().transition_interval);
}

#[test]
fn new_deployment_with_initial_savepoint_restores_from_it() {
    let mut d = app(UpgradeMode::Stateless);
    d.spec.job.as_mut().unwrap().initial_savepoint_path = Some("file:///sp/savepoint-1".into());
    d.spec.job.as_mut().unwrap().allow_non_restored_state = Some(true);
    let decision = run(&d, &absent());
    let restore = deploy_plan(&decision).job.clone().unwrap().restore.unwrap();
    assert_eq!(restore.path, "file:///sp/savepoint-1");
    assert!(restore.allow_non_restored_state);
    assert_eq!(
        path_of(&decision).as_deref(),
        Some("file:///sp/savepoint-1")
    );
}

#[test]
fn new_invalid_spec_records_the_error_and_does_nothing() {
    let mut d = app(UpgradeMode::Savepoint);
    d.spec.job.as_mut().unwrap().parallelism = Some(-2);
    let decision = run(&d, &absent());
    assert!(decision.actions.is_empty());
    let error = decision.status.error.clone().unwrap();
    assert!(error.contains("spec.job.parallelism"), "{error}");
    assert_eq!(lifecycle(&decision), ResourceLifecycleState::Failed);
    assert_eq!(decision.events.len(), 1);
    assert_eq!(decision.events[0].reason, EventReason::ValidationError);
    // the same error again is not a new event
    let again = run(&persisted(&d, &decision), &absent());
    assert!(again.events.is_empty());
}

#[test]
fn new_suspended_deployment_is_recorded_without_deploying() {
    let d = app(UpgradeMode::Savepoint).suspended();
    let decision = run(&d, &absent());
    assert!(decision.actions.is_empty());
    assert_eq!(recon_state(&decision), Some(ReconciliationState::Deployed));
    assert_eq!(lifecycle(&decision), ResourceLifecycleState::Suspended);
}

// ---- Deploying ------------------------------------------------------------------------------

#[test]
fn deploy_in_flight_after_a_crash_deploys_the_recorded_plan_again() {
    let d = app(UpgradeMode::Savepoint);
    let first = run(&d, &absent());
    // crash: status persisted, deploy never ran (or ran partially)
    let d2 = persisted(&d, &first);
    let mut other_ids = fresh();
    other_ids.job_id = "0000000000000000000000000000dddd".into();
    let second = decide(DecideInput {
        resource: &d2,
        observation: &absent(),
        settings: &settings(),
        now_ms: NOW + 5,
        fresh: &other_ids,
    });
    assert_eq!(
        deploy_plan(&second).plan_hash,
        deploy_plan(&first).plan_hash
    );
    assert_eq!(deploy_plan(&second).job.as_ref().unwrap().job_id, NEW_JOB);
}

#[test]
fn a_deploy_in_flight_whose_jobmanager_died_keeps_its_state_when_the_spec_turns_stateless() {
    // A savepoint-mode deploy of job OLD_JOB from a savepoint is recorded and in flight; the
    // job ran and completed checkpoint 3, then its JobManager died. Meanwhile the user changed
    // the spec, now in stateless mode.
    let recorded = app(UpgradeMode::Savepoint);
    let mut d = with_target(
        set_path(recorded.clone(), Some("file:/fp/savepoints/savepoint-1")),
        &recorded.spec,
        ReconciliationState::Upgrading,
    );
    d.status
        .as_mut()
        .unwrap()
        .job_status
        .as_mut()
        .unwrap()
        .job_id = Some(OLD_JOB.into());
    let mut d = with_args(d, &["--rate", "20"]);
    d.spec.job.as_mut().unwrap().upgrade_mode = Some(UpgradeMode::Stateless);

    // observe is asked for the job's newest state although the new spec is stateless …
    assert!(observe_needs(&d, &settings()).recovery_state);
    let cp = checkpoint(3, Some(true));
    let mut obs = absent();
    obs.cluster = ClusterObservation::Failed {
        plan_hash: Some("old".into()),
        reason: "exited with code 137".into(),
        log_tail: None,
    };
    obs.latest_checkpoint = Some(cp.clone());
    obs.progress.checkpoint_lookup_complete = true;
    // … and records it before the cluster is deleted: the job ran in savepoint mode
    let removed = run(&d, &obs);
    assert_eq!(removed.actions, vec![Action::DeleteCluster]);
    assert_eq!(path_of(&removed), Some(cp.path.clone()));
    // the new spec is deployed from it
    let d = acted(&d, &removed);
    let deployed = run(&d, &absent());
    let job = deploy_plan(&deployed).job.clone().unwrap();
    assert_eq!(job.args, ["--rate", "20"]);
    assert_eq!(job.restore.unwrap().path, cp.path);
}

#[test]
fn deploy_outcome_marks_the_spec_deployed_and_the_jobmanager_deploying() {
    let d = app(UpgradeMode::Savepoint);
    let decision = run(&d, &absent());
    let d = acted(&d, &decision);
    let status = d.status.clone().unwrap();
    assert_eq!(
        status.reconciliation_status.unwrap().state,
        Some(ReconciliationState::Deployed)
    );
    assert_eq!(
        status.job_manager_deployment_status,
        Some(JobManagerDeploymentStatus::Deploying)
    );
    assert_eq!(
        status.job_status.unwrap().state,
        Some(FlinkJobState::Reconciling)
    );
    assert_eq!(
        status.lifecycle_state,
        Some(ResourceLifecycleState::Deployed)
    );
}

#[test]
fn a_failed_deploy_is_recorded_and_the_deploy_stays_in_flight() {
    let d = app(UpgradeMode::Savepoint);
    let decision = run(&d, &absent());
    let failed = Outcome::Failed {
        message: "jar not found".into(),
        transient: false,
    };
    let (status, events) = apply_outcome(&decision.status, &decision.actions[0], &failed, NOW);
    assert!(status.error.unwrap().contains("jar not found"));
    assert_eq!(events.len(), 1);
    assert_eq!(
        status.reconciliation_status.unwrap().state,
        Some(ReconciliationState::Upgrading)
    );
}

// ---- Running --------------------------------------------------------------------------------

#[rstest]
#[case::starting(ClusterObservation::Starting { plan_hash: None }, JobObservation::Unknown { reason: "x".into() }, Some(JobManagerDeploymentStatus::Deploying))]
#[case::rest_not_ready(ClusterObservation::Running { plan_hash: None, taskmanagers: 1 }, JobObservation::Unknown { reason: "x".into() }, Some(JobManagerDeploymentStatus::DeployedNotReady))]
#[case::ready(ClusterObservation::Running { plan_hash: None, taskmanagers: 1 }, JobObservation::NotFound, Some(JobManagerDeploymentStatus::Ready))]
#[case::missing(ClusterObservation::Absent, JobObservation::Unknown { reason: "x".into() }, Some(JobManagerDeploymentStatus::Missing))]
#[case::error(ClusterObservation::Failed { plan_hash: None, reason: "exit code 1".into(), log_tail: Some("boom".into()) }, JobObservation::Unknown { reason: "x".into() }, Some(JobManagerDeploymentStatus::Error))]
fn jobmanager_status_follows_the_observation(
    #[case] cluster: ClusterObservation,
    #[case] job: JobObservation,
    #[case] expected: Option<JobManagerDeploymentStatus>,
) {
    let d = deployed(app(UpgradeMode::Savepoint));
    let obs = Observation {
        cluster,
        job,
        trigger: None,
        latest_checkpoint: None,
        failure_cause: None,
        snapshots: Default::default(),
        progress: Default::default(),
    };
    let decision = run(&d, &obs);
    assert_eq!(decision.status.job_manager_deployment_status, expected);
    assert!(decision.actions.is_empty());
}

#[test]
fn a_failed_jobmanager_puts_its_reason_and_log_in_the_error() {
    // Recovery off: this is about the report (recovery has its own tests).
    let d = deployed(app(UpgradeMode::Savepoint).with_config(
        "kubernetes.operator.jm-deployment-recovery.enabled",
        "false",
    ));
    let obs = Observation {
        cluster: ClusterObservation::Failed {
            plan_hash: None,
            reason: "exited with code 1".into(),
            log_tail: Some("Caused by: java.lang.ClassNotFoundException: Foo".into()),
        },
        ..absent()
    };
    let decision = run(&d, &obs);
    let error = decision.status.error.unwrap();
    assert!(error.starts_with(JOBMANAGER_FAILED), "{error}");
    assert!(error.contains("ClassNotFoundException"), "{error}");
}

#[test]
fn running_job_on_a_ready_jobmanager_becomes_stable() {
    let mut d = deployed(app(UpgradeMode::Savepoint));
    d.status
        .as_mut()
        .unwrap()
        .reconciliation_status
        .as_mut()
        .unwrap()
        .last_stable_spec = None;
    let decision = run(&d, &running_cluster(job(OLD_JOB, FlinkJobState::Running)));
    assert_eq!(lifecycle(&decision), ResourceLifecycleState::Stable);
    assert!(decision.actions.is_empty());
    assert_eq!(decision.requeue_after, settings().observe_interval);
}

#[test]
fn a_failed_job_is_reported_with_its_cause() {
    let d = deployed(app(UpgradeMode::Savepoint));
    let mut obs = running_cluster(job(OLD_JOB, FlinkJobState::Failed));
    obs.failure_cause = Some("java.lang.IllegalStateException: boom".into());
    let decision = run(&d, &obs);
    assert_eq!(lifecycle(&decision), ResourceLifecycleState::Failed);
    assert!(decision.status.error.unwrap().contains("boom"));
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.reason == EventReason::JobStatusChanged && e.message.contains("boom"))
    );
    assert!(decision.actions.is_empty());
}

#[test]
fn an_ignored_change_is_recorded_without_touching_the_job() {
    let d = deployed(app(UpgradeMode::Savepoint));
    let mut changed = d.clone();
    changed.spec.job.as_mut().unwrap().upgrade_mode = Some(UpgradeMode::LastState);
    let decision = run(
        &changed,
        &running_cluster(job(OLD_JOB, FlinkJobState::Running)),
    );
    assert!(decision.actions.is_empty());
    let target = target_spec(&decision.status).unwrap();
    assert_eq!(target.job.unwrap().upgrade_mode(), UpgradeMode::LastState);
}

#[rstest]
#[case::mode_change(|d: &mut FlinkDeployment| d.spec.mode = Some(DeploymentMode::Standalone), "spec.mode")]
#[case::bad_parallelism(|d: &mut FlinkDeployment| d.spec.job.as_mut().unwrap().parallelism = Some(-1), "spec.job.parallelism")]
#[case::becomes_session(|d: &mut FlinkDeployment| { d.spec.job.as_mut().unwrap().jar_uri = None; }, "spec.job.jarURI")]
fn an_invalid_change_leaves_the_running_job_alone(
    #[case] change: fn(&mut FlinkDeployment),
    #[case] field: &str,
) {
    let d = deployed(app(UpgradeMode::Savepoint));
    let before = target_of(&d);
    let mut changed = d.clone();
    change(&mut changed);
    let decision = run(
        &changed,
        &running_cluster(job(OLD_JOB, FlinkJobState::Running)),
    );
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);
    assert_eq!(target_spec(&decision.status).unwrap(), before);
    assert_eq!(recon_state(&decision), Some(ReconciliationState::Deployed));
    let error = decision.status.error.clone().unwrap();
    assert!(
        error.starts_with(INVALID_SPEC) && error.contains(field),
        "{error}"
    );
    // fixing the spec clears the error
    let fixed = run(
        &persisted(&d, &decision),
        &running_cluster(job(OLD_JOB, FlinkJobState::Running)),
    );
    assert_eq!(fixed.status.error, None);
}

#[test]
fn manual_savepoint_nonce_triggers_a_savepoint_once() {
    // the legacy way: without snapshot resources, recorded in savepointInfo
    let d = deployed(
        app(UpgradeMode::Savepoint)
            .with_config(crate::decide::snapshots::SNAPSHOT_RESOURCE_ENABLED, "false"),
    );
    let mut changed = d.clone();
    changed.spec.job.as_mut().unwrap().savepoint_trigger_nonce = Some(7);
    let running = running_cluster(job(OLD_JOB, FlinkJobState::Running));
    let decision = run(&changed, &running);
    match decision.actions.as_slice() {
        [Action::TriggerSavepoint(call)] => {
            assert_eq!(call.trigger_id, TRIGGER);
            assert_eq!(call.job_id, OLD_JOB);
            assert_eq!(call.target_dir.as_deref(), Some("file:///fp/savepoints"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(trigger_of(&decision).as_deref(), Some(TRIGGER));
    // in progress: nothing new
    let d2 = persisted(&changed, &decision);
    let mut obs = running.clone();
    obs.trigger = Some(TriggerObservation {
        trigger_id: TRIGGER.into(),
        state: TriggerState::InProgress,
    });
    assert!(run(&d2, &obs).actions.is_empty());
    // completed: recorded with its nonce, not triggered again
    obs.trigger = Some(TriggerObservation {
        trigger_id: TRIGGER.into(),
        state: TriggerState::Completed {
            location: Some("file:/fp/savepoints/savepoint-1".into()),
        },
    });
    let done = run(&d2, &obs);
    assert!(done.actions.is_empty());
    assert_eq!(trigger_of(&done), None);
    let info = done.status.job_status.unwrap().savepoint_info.unwrap();
    let last = info.last_savepoint.unwrap();
    assert_eq!(
        last.location.as_deref(),
        Some("file:/fp/savepoints/savepoint-1")
    );
    assert_eq!(last.trigger_nonce, Some(7));
    assert_eq!(last.trigger_type, Some(SnapshotTriggerType::Manual));
    assert_eq!(info.savepoint_history.unwrap().len(), 1);
}

#[test]
fn a_failed_savepoint_is_an_error_event_and_is_not_retried_in_the_same_pass() {
    let desired = with_args(deployed(app(UpgradeMode::Savepoint)), &["--rate", "5"]);
    let target = super::super::suspended_copy(&desired.spec, UpgradeMode::Savepoint);
    let changed = set_trigger(
        with_target(desired, &target, ReconciliationState::Upgrading),
        TRIGGER,
    );
    let mut obs = running_cluster(job(OLD_JOB, FlinkJobState::Running));
    obs.trigger = Some(TriggerObservation {
        trigger_id: TRIGGER.into(),
        state: TriggerState::Failed {
            cause: "disk full".into(),
        },
    });
    let decision = run(&changed, &obs);
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);
    assert!(decision.status.error.clone().unwrap().contains("disk full"));
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.reason == EventReason::SavepointError)
    );
    assert_eq!(decision.requeue_after, settings().retry_interval);
    // the next pass retries with a fresh trigger id
    let retry = run(
        &persisted(&changed, &decision),
        &running_cluster(job(OLD_JOB, FlinkJobState::Running)),
    );
    assert!(matches!(
        retry.actions.as_slice(),
        [Action::StopWithSavepoint(_)]
    ));
}
