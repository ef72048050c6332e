//! Recovery decisions (`decide/recovery.rs`, `rollback.rs`, `health.rs`) and the recovery
//! rules of upgrades (last-state fallback, checkpoint age): one test per row.

use api::{FlinkJobState, JobManagerDeploymentStatus, ReconciliationState, ResourceLifecycleState};
use api::{Savepoint, SavepointInfo, UpgradeMode};
use rstest::rstest;

use super::transitions::{deploy_plan, lifecycle, with_args};
use super::*;
use crate::action::{Action, EventReason};
use crate::decide::recovery::RECOVERY_BLOCKED;

const RESTART_FAILED: &str = "kubernetes.operator.job.restart.failed";
const ROLLBACK: &str = "kubernetes.operator.deployment.rollback.enabled";
const READINESS: &str = "kubernetes.operator.deployment.readiness.timeout";

fn jobmanager_gone() -> Observation {
    let mut obs = absent();
    obs.cluster = ClusterObservation::Failed {
        plan_hash: Some("old".into()),
        reason: "exited with code 137".into(),
        log_tail: None,
    };
    obs
}

/// `obs` with the checkpoint lookup complete and `checkpoint` the newest one.
fn with_checkpoint(mut obs: Observation, checkpoint: Option<CheckpointRef>) -> Observation {
    obs.progress.checkpoint_lookup_complete = true;
    obs.latest_checkpoint = checkpoint;
    obs
}

fn failed_job() -> Observation {
    let mut obs = running_cluster(job(OLD_JOB, FlinkJobState::Failed));
    obs.failure_cause = Some("java.lang.ArithmeticException: / by zero".into());
    obs
}

fn has_event(d: &Decision, reason: EventReason, text: &str) -> bool {
    d.events
        .iter()
        .any(|e| e.reason == reason && e.message.contains(text))
}

fn set_start(mut d: FlinkDeployment, start: i64) -> FlinkDeployment {
    let js = d.status.as_mut().unwrap().job_status.as_mut().unwrap();
    js.start_time = Some(start.to_string());
    d
}

// ---- JobManager lost ------------------------------------------------------------------------

#[rstest]
#[case::process_gone(jobmanager_gone(), Some(Action::DeleteCluster))]
#[case::cluster_gone(absent(), None)]
fn a_lost_jobmanager_is_recovered_from_the_newest_checkpoint(
    #[case] obs: Observation,
    #[case] first: Option<Action>,
) {
    let d = deployed(app(UpgradeMode::Savepoint));
    let cp = checkpoint(7, Some(true));
    let decision = run(&d, &with_checkpoint(obs, Some(cp.clone())));
    assert_eq!(recon_state(&decision), Some(ReconciliationState::Upgrading));
    assert_eq!(path_of(&decision), Some(cp.path.clone()));
    assert_eq!(
        decision
            .status
            .job_status
            .as_ref()
            .unwrap()
            .job_id
            .as_deref(),
        Some(NEW_JOB),
        "the new job id is recorded before anything is deleted"
    );
    match first {
        Some(action) => assert_eq!(decision.actions, vec![action]),
        None => {
            let plan = deploy_plan(&decision);
            assert_eq!(
                plan.job.as_ref().unwrap().restore.as_ref().unwrap().path,
                cp.path
            );
        }
    }
    assert!(
        has_event(&decision, EventReason::RecoverDeployment, &cp.path),
        "{:?}",
        decision.events
    );
    assert_eq!(lifecycle(&decision), ResourceLifecycleState::Upgrading);
}

#[test]
fn a_recovery_deletes_the_old_cluster_then_deploys_the_same_spec_from_the_recorded_state() {
    let d = deployed(app(UpgradeMode::LastState));
    let cp = checkpoint(7, Some(true));
    let first = run(&d, &with_checkpoint(jobmanager_gone(), Some(cp.clone())));
    let d = acted(&d, &first);
    // next pass: the cluster is gone; the same spec is deployed from the checkpoint
    let next = run(&d, &absent());
    let plan = deploy_plan(&next);
    let job = plan.job.as_ref().unwrap();
    assert_eq!(job.job_id, NEW_JOB);
    assert_eq!(job.restore.as_ref().unwrap().path, cp.path);
    let done = acted(&d, &next);
    let status = done.status.unwrap();
    assert_eq!(
        status.reconciliation_status.unwrap().state,
        Some(ReconciliationState::Deployed)
    );
}

#[test]
fn a_crash_after_recording_a_recovery_deletes_the_stale_cluster_before_deploying() {
    let d = deployed(app(UpgradeMode::LastState));
    let first = run(
        &d,
        &with_checkpoint(jobmanager_gone(), Some(checkpoint(7, Some(true)))),
    );
    // the status was written, the delete never ran: the old cluster (another plan) is still
    // there; deploying over it would be refused, so it is deleted first
    let d = persisted(&d, &first);
    let again = run(&d, &jobmanager_gone());
    assert_eq!(again.actions, vec![Action::DeleteCluster]);
    assert_eq!(path_of(&again), path_of(&first));
}

#[test]
fn a_lost_jobmanager_is_only_reported_when_recovery_is_disabled() {
    let d = deployed(app(UpgradeMode::Savepoint).with_config(
        "kubernetes.operator.jm-deployment-recovery.enabled",
        "false",
    ));
    let decision = run(
        &d,
        &with_checkpoint(absent(), Some(checkpoint(7, Some(true)))),
    );
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);
    assert_eq!(
        decision.status.job_manager_deployment_status,
        Some(JobManagerDeploymentStatus::Missing)
    );
    assert!(has_event(&decision, EventReason::Missing, "is false"));
}

#[test]
fn a_recovery_that_cannot_prove_the_newest_state_deletes_nothing() {
    let d = deployed(app(UpgradeMode::LastState));
    // the JobManager is gone and the storage cannot be listed
    let decision = run(&d, &jobmanager_gone());
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);
    let error = decision.status.error.clone().unwrap();
    assert!(error.starts_with(RECOVERY_BLOCKED), "{error}");
    assert_eq!(recon_state(&decision), Some(ReconciliationState::Deployed));
}

#[test]
fn a_jobmanager_that_never_came_up_is_a_failed_deploy_not_a_loss() {
    let mut d = deployed(app(UpgradeMode::LastState));
    d.status.as_mut().unwrap().job_manager_deployment_status =
        Some(JobManagerDeploymentStatus::Deploying);
    let decision = run(
        &d,
        &with_checkpoint(jobmanager_gone(), Some(checkpoint(7, Some(true)))),
    );
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);
    assert_eq!(
        decision.status.job_manager_deployment_status,
        Some(JobManagerDeploymentStatus::Error)
    );
}

// ---- which state a recovery restores --------------------------------------------------------

#[test]
fn a_savepoint_taken_after_the_newest_checkpoint_is_restored() {
    let mut d = set_start(deployed(app(UpgradeMode::Savepoint)), NOW - 60_000);
    d.status
        .as_mut()
        .unwrap()
        .job_status
        .as_mut()
        .unwrap()
        .savepoint_info = Some(SavepointInfo {
        last_savepoint: Some(Savepoint {
            time_stamp: Some(NOW - 100),
            location: Some("file:/fp/savepoints/sp-1".into()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let cp = checkpoint(7, Some(true)); // completed at NOW - 500
    let decision = run(&d, &with_checkpoint(jobmanager_gone(), Some(cp)));
    assert_eq!(
        path_of(&decision).as_deref(),
        Some("file:/fp/savepoints/sp-1")
    );
}

#[test]
fn a_job_that_never_checkpointed_restarts_from_the_state_it_started_from() {
    let d = set_path(
        deployed(app(UpgradeMode::LastState)),
        Some("file:/fp/savepoints/start"),
    );
    let decision = run(&d, &with_checkpoint(jobmanager_gone(), None));
    assert_eq!(
        path_of(&decision).as_deref(),
        Some("file:/fp/savepoints/start")
    );
    assert_eq!(decision.actions, vec![Action::DeleteCluster]);
}

#[test]
fn a_checkpoint_that_is_not_on_storage_is_not_restored() {
    let d = set_path(
        deployed(app(UpgradeMode::LastState)),
        Some("file:/fp/savepoints/start"),
    );
    let decision = run(
        &d,
        &with_checkpoint(jobmanager_gone(), Some(checkpoint(7, Some(false)))),
    );
    assert_eq!(
        path_of(&decision).as_deref(),
        Some("file:/fp/savepoints/start")
    );
}

// ---- FAILED jobs ----------------------------------------------------------------------------

#[test]
fn a_failed_job_stays_failed_with_its_cause_without_restart_failed() {
    let d = deployed(app(UpgradeMode::LastState));
    let decision = run(
        &d,
        &with_checkpoint(failed_job(), Some(checkpoint(7, Some(true)))),
    );
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);
    let error = decision.status.error.clone().unwrap();
    assert!(error.contains("ArithmeticException"), "{error}");
    assert_eq!(lifecycle(&decision), ResourceLifecycleState::Failed);
}

#[rstest]
#[case::last_state(UpgradeMode::LastState, Some(checkpoint(7, None).path))]
#[case::savepoint(UpgradeMode::Savepoint, Some(checkpoint(7, None).path))]
#[case::stateless(UpgradeMode::Stateless, None)]
fn a_failed_job_is_redeployed_from_its_newest_state_with_restart_failed(
    #[case] mode: UpgradeMode,
    #[case] restored: Option<String>,
) {
    let d = deployed(app(mode).with_config(RESTART_FAILED, "true"));
    let decision = run(
        &d,
        &with_checkpoint(failed_job(), Some(checkpoint(7, Some(true)))),
    );
    assert_eq!(decision.actions, vec![Action::DeleteCluster]);
    assert_eq!(path_of(&decision), restored);
    assert_eq!(recon_state(&decision), Some(ReconciliationState::Upgrading));
    assert!(
        has_event(
            &decision,
            EventReason::RestartFailedJob,
            "ArithmeticException"
        ),
        "the event says why: {:?}",
        decision.events
    );
}

// ---- health check ---------------------------------------------------------------------------

#[test]
fn a_job_restarting_too_often_is_restarted_from_its_newest_checkpoint() {
    let d = deployed(
        app(UpgradeMode::LastState)
            .with_config("kubernetes.operator.cluster.health-check.enabled", "true")
            .with_config(
                "kubernetes.operator.cluster.health-check.restarts.threshold",
                "2",
            ),
    );
    let cp = checkpoint(7, Some(true));
    let observe = |restarts: u64| {
        let mut obs = with_checkpoint(
            running_cluster(job(OLD_JOB, FlinkJobState::Running)),
            Some(cp.clone()),
        );
        obs.progress.restarts = Some(restarts);
        obs.progress.completed_checkpoints = Some(7);
        obs
    };
    let first = run(&d, &observe(0));
    assert!(first.actions.is_empty(), "a history starts healthy");
    let d = persisted(&d, &first);
    let unhealthy = decide(DecideInput {
        resource: &d,
        observation: &observe(5),
        settings: &settings(),
        now_ms: NOW + 10_000,
        fresh: &fresh(),
    });
    assert_eq!(unhealthy.actions, vec![Action::DeleteCluster]);
    assert_eq!(path_of(&unhealthy), Some(cp.path));
    assert!(
        has_event(
            &unhealthy,
            EventReason::RestartUnhealthyJob,
            "restarted 5 times"
        ),
        "{:?}",
        unhealthy.events
    );
}

#[test]
fn the_health_check_is_off_by_default() {
    let d = deployed(app(UpgradeMode::LastState));
    let needs = observe_needs(&d, &settings());
    assert!(!needs.job_progress);
    let mut obs = running_cluster(job(OLD_JOB, FlinkJobState::Running));
    obs.progress.restarts = Some(1000);
    let decision = run(&d, &obs);
    assert!(decision.actions.is_empty());
}

// ---- TaskManagers ---------------------------------------------------------------------------

#[test]
fn a_taskmanager_that_died_is_started_again_where_nothing_else_does() {
    let d = deployed(app(UpgradeMode::Savepoint));
    let mut obs = running_cluster(job(OLD_JOB, FlinkJobState::Restarting));
    obs.cluster = ClusterObservation::Running {
        plan_hash: None,
        taskmanagers: 0,
    };
    let local = Settings {
        restart_lost_taskmanagers: true,
        ..settings()
    };
    let decision = decide(DecideInput {
        resource: &d,
        observation: &obs,
        settings: &local,
        now_ms: NOW,
        fresh: &fresh(),
    });
    assert!(
        matches!(
            decision.actions.as_slice(),
            [Action::Scale {
                taskmanagers: 1,
                ..
            }]
        ),
        "{:?}",
        decision.actions
    );
    // Kubernetes restarts pods itself
    let decision = run(&d, &obs);
    assert!(decision.actions.is_empty());
}

// ---- stability and rollback -----------------------------------------------------------------

/// Stable spec with args `a` deployed and stable; then spec `b` deployed at `deployed_at`
/// and not stable yet.
fn upgraded(extra: &[(&str, &str)], deployed_at: i64) -> FlinkDeployment {
    let mut base = app(UpgradeMode::Savepoint);
    for (k, v) in extra {
        base = base.with_config(k, v);
    }
    let d = deployed(with_args(base, &["a"]));
    let d = with_args(d, &["b"]);
    let spec = d.spec.clone();
    let mut d = with_target(d, &spec, ReconciliationState::Deployed);
    let status = d.status.as_mut().unwrap();
    status
        .reconciliation_status
        .as_mut()
        .unwrap()
        .reconciliation_timestamp = Some(deployed_at);
    status.job_status.as_mut().unwrap().upgrade_savepoint_path =
        Some("file:/fp/savepoints/upgrade".into());
    d
}

fn crash_looping() -> Observation {
    let mut obs = running_cluster(JobObservation::Found(JobInfo {
        all_tasks_running: Some(false),
        ..match job(OLD_JOB, FlinkJobState::Running) {
            JobObservation::Found(info) => info,
            _ => unreachable!(),
        }
    }));
    obs.progress.checkpoint_lookup_complete = true;
    obs
}

#[test]
fn a_running_job_whose_tasks_do_not_all_run_is_not_stable() {
    let d = upgraded(&[], NOW - 1_000);
    let decision = run(&d, &crash_looping());
    assert_eq!(lifecycle(&decision), ResourceLifecycleState::Deployed);
    let decision = run(&d, &running_cluster(job(OLD_JOB, FlinkJobState::Running)));
    assert_eq!(lifecycle(&decision), ResourceLifecycleState::Stable);
}

#[rstest]
#[case::disabled(&[], NOW - 600_000)]
#[case::before_the_timeout(&[(ROLLBACK, "true"), (READINESS, "30s")], NOW - 10_000)]
fn no_rollback_when_disabled_or_before_the_readiness_timeout(
    #[case] extra: &[(&str, &str)],
    #[case] deployed_at: i64,
) {
    let d = upgraded(extra, deployed_at);
    let decision = run(&d, &crash_looping());
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);
    assert_eq!(recon_state(&decision), Some(ReconciliationState::Deployed));
}

#[test]
fn an_upgrade_not_stable_within_the_readiness_timeout_rolls_back_with_its_state() {
    let d = upgraded(&[(ROLLBACK, "true"), (READINESS, "10s")], NOW - 11_000);
    let decision = run(&d, &crash_looping());
    assert_eq!(decision.actions, vec![Action::DeleteCluster]);
    assert_eq!(
        recon_state(&decision),
        Some(ReconciliationState::RollingBack)
    );
    assert_eq!(lifecycle(&decision), ResourceLifecycleState::RollingBack);
    // the failing job never completed a checkpoint: the state it started from
    assert_eq!(
        path_of(&decision).as_deref(),
        Some("file:/fp/savepoints/upgrade")
    );
    assert!(
        has_event(&decision, EventReason::Rollback, "within 10s"),
        "{:?}",
        decision.events
    );

    // next pass: the stable spec (args `a`) is deployed; lastReconciledSpec keeps `b`
    let d = acted(&d, &decision);
    let next = run(&d, &absent());
    let plan = deploy_plan(&next);
    let job = plan.job.as_ref().unwrap();
    assert_eq!(job.args, vec!["a".to_string()]);
    assert_eq!(
        job.restore.as_ref().unwrap().path,
        "file:/fp/savepoints/upgrade"
    );
    let d = acted(&d, &next);
    let status = d.status.clone().unwrap();
    assert_eq!(
        status.reconciliation_status.as_ref().unwrap().state,
        Some(ReconciliationState::RolledBack)
    );
    assert_eq!(
        status.lifecycle_state,
        Some(ResourceLifecycleState::RolledBack)
    );
    assert_eq!(target_of(&d).job.unwrap().args, Some(vec!["b".to_string()]));

    // the rolled-back job runs: it stays ROLLED_BACK, and the failed spec never becomes
    // stable
    let steady = run(&d, &running_cluster(job_found(NEW_JOB)));
    assert!(steady.actions.is_empty(), "{:?}", steady.actions);
    assert_eq!(lifecycle(&steady), ResourceLifecycleState::RolledBack);
    let recon = steady.status.reconciliation_status.unwrap();
    assert!(!recon.is_last_reconciled_spec_stable());
}

fn job_found(id: &str) -> JobObservation {
    job(id, FlinkJobState::Running)
}

#[test]
fn a_changed_spec_after_a_rollback_is_upgraded_as_usual() {
    let d = upgraded(&[(ROLLBACK, "true"), (READINESS, "10s")], NOW - 11_000);
    let decision = run(&d, &crash_looping());
    let d = acted(&d, &decision);
    let d = acted(&d, &run(&d, &absent()));
    let d = with_args(d, &["c"]);
    let decision = run(&d, &running_cluster(job_found(NEW_JOB)));
    assert!(
        matches!(decision.actions.as_slice(), [Action::StopWithSavepoint(_)]),
        "{:?}",
        decision.actions
    );
    assert_eq!(recon_state(&decision), Some(ReconciliationState::Upgrading));
}

// ---- upgrades of unhealthy jobs, checkpoint age ---------------------------------------------

#[test]
fn a_savepoint_upgrade_of_a_failed_job_falls_back_to_the_newest_checkpoint() {
    let d = with_args(deployed(app(UpgradeMode::Savepoint)), &["x"]);
    let cp = checkpoint(9, Some(true));
    let decision = run(&d, &with_checkpoint(failed_job(), Some(cp.clone())));
    assert_eq!(decision.actions, vec![Action::DeleteCluster]);
    assert_eq!(path_of(&decision), Some(cp.path.clone()));
    assert!(
        has_event(
            &decision,
            EventReason::SpecChanged,
            "falling back to last-state"
        ),
        "{:?}",
        decision.events
    );
}

#[test]
fn a_savepoint_upgrade_never_falls_back_to_empty_state() {
    let d = with_args(deployed(app(UpgradeMode::Savepoint)), &["x"]);
    let decision = run(&d, &with_checkpoint(failed_job(), None));
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);
    let error = decision.status.error.clone().unwrap();
    assert!(error.contains("no completed checkpoint"), "{error}");
}

#[test]
fn a_last_state_upgrade_with_a_too_old_checkpoint_takes_a_savepoint_instead() {
    let d = with_args(
        deployed(app(UpgradeMode::LastState).with_config(
            "kubernetes.operator.job.upgrade.last-state.max.allowed.checkpoint.age",
            "10s",
        )),
        &["x"],
    );
    let mut old = checkpoint(4, Some(true));
    old.timestamp_ms = NOW - 60_000;
    let obs = with_checkpoint(
        running_cluster(job(OLD_JOB, FlinkJobState::Running)),
        Some(old.clone()),
    );
    let decision = run(&d, &obs);
    assert!(
        matches!(decision.actions.as_slice(), [Action::StopWithSavepoint(_)]),
        "{:?}",
        decision.actions
    );
    assert!(
        trigger_of(&decision).is_some(),
        "the trigger is recorded first"
    );
    assert!(has_event(&decision, EventReason::SpecChanged, "1m old"));

    // a checkpoint in progress is waited for instead
    let mut pending = obs.clone();
    pending.progress.pending_checkpoint_ms = Some(NOW - 200);
    let decision = run(&d, &pending);
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);

    // a fresh checkpoint is used as usual
    let fresh_cp = checkpoint(5, Some(true));
    let decision = run(
        &d,
        &with_checkpoint(
            running_cluster(job(OLD_JOB, FlinkJobState::Running)),
            Some(fresh_cp.clone()),
        ),
    );
    assert_eq!(path_of(&decision), Some(fresh_cp.path));
}

#[test]
fn observe_needs_ask_for_recovery_state_and_progress_only_when_used() {
    let d = deployed(app(UpgradeMode::Savepoint));
    let needs = observe_needs(&d, &settings());
    assert!(needs.recovery_state);
    assert!(!needs.job_progress);
    let d = deployed(app(UpgradeMode::Stateless));
    assert!(!observe_needs(&d, &settings()).recovery_state);
}
