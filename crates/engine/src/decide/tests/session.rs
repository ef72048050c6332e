//! Session clusters (no `spec.job`): one test per transition of `decide/session.rs`.

use api::{
    DeploymentMode, JobManagerDeploymentStatus, ReconciliationState, ResourceLifecycleState,
};

use super::transitions::{deploy_plan, lifecycle};
use super::*;
use crate::action::{Action, EventReason};
use crate::plan::ClusterMode;

fn session() -> FlinkDeployment {
    FlinkDeployment::test("session").with_generation(1)
}

fn cluster(plan_hash: &str, rest_answers: bool) -> Observation {
    Observation {
        cluster: ClusterObservation::Running {
            plan_hash: Some(plan_hash.to_string()),
            taskmanagers: 1,
        },
        job: if rest_answers {
            JobObservation::NotFound
        } else {
            JobObservation::Unknown {
                reason: "connection refused".into(),
            }
        },
        trigger: None,
        latest_checkpoint: None,
        failure_cause: None,
        snapshots: Default::default(),
        progress: Default::default(),
    }
}

/// `d` after its first deployment went through: deployed, and the plan hash it runs.
fn deployed_session(d: FlinkDeployment) -> (FlinkDeployment, String) {
    let first = run(&d, &absent());
    let hash = deploy_plan(&first).plan_hash.clone();
    (acted(&d, &first), hash)
}

#[test]
fn a_new_session_cluster_records_its_target_then_deploys_a_session_plan() {
    let d = session();
    let decision = run(&d, &absent());
    let plan = deploy_plan(&decision);
    assert_eq!(plan.mode, ClusterMode::Session);
    assert!(plan.job.is_none());
    assert_eq!(recon_state(&decision), Some(ReconciliationState::Upgrading));
    assert_eq!(target_spec(&decision.status), Some(d.spec.clone()));
    assert_eq!(
        decision.status.job_status, None,
        "a session cluster has no job"
    );
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.reason == EventReason::Submit)
    );
    assert_eq!(decision.requeue_after, settings().transition_interval);
}

#[test]
fn a_session_cluster_is_stable_once_its_rest_api_answers() {
    let (d, hash) = deployed_session(session());
    let not_ready = run(&d, &cluster(&hash, false));
    assert!(not_ready.actions.is_empty(), "{:?}", not_ready.actions);
    assert_eq!(
        not_ready.status.job_manager_deployment_status,
        Some(JobManagerDeploymentStatus::DeployedNotReady)
    );
    assert_eq!(lifecycle(&not_ready), ResourceLifecycleState::Deployed);
    assert_eq!(not_ready.requeue_after, settings().transition_interval);

    let ready = run(&persisted(&d, &not_ready), &cluster(&hash, true));
    assert!(ready.actions.is_empty());
    assert_eq!(
        ready.status.job_manager_deployment_status,
        Some(JobManagerDeploymentStatus::Ready)
    );
    assert_eq!(lifecycle(&ready), ResourceLifecycleState::Stable);
    assert_eq!(ready.status.job_status, None);
    assert_eq!(ready.requeue_after, settings().observe_interval);
}

#[test]
fn a_spec_change_records_the_new_target_deletes_the_old_cluster_then_deploys_the_new_one() {
    let (d, hash) = deployed_session(session());
    let mut changed = d.clone().with_config("rest.flamegraph.enabled", "true");
    changed.metadata.generation = Some(2);
    let stop = run(&changed, &cluster(&hash, true));
    assert_eq!(stop.actions, vec![Action::DeleteCluster]);
    assert_eq!(recon_state(&stop), Some(ReconciliationState::Upgrading));
    assert_eq!(target_spec(&stop.status), Some(changed.spec.clone()));
    assert!(
        stop.events
            .iter()
            .any(|e| e.reason == EventReason::SpecChanged)
    );

    // crash after persisting, before the delete: the old cluster is deleted again
    let again = run(&persisted(&changed, &stop), &cluster(&hash, true));
    assert_eq!(again.actions, vec![Action::DeleteCluster]);

    let gone = acted(&changed, &stop);
    let deploy = run(&gone, &absent());
    let plan = deploy_plan(&deploy);
    assert_ne!(plan.plan_hash, hash);
    assert_eq!(plan.config.get("rest.flamegraph.enabled"), Some("true"));
    let done = acted(&gone, &deploy);
    assert_eq!(
        done.status
            .as_ref()
            .and_then(|s| s.reconciliation_status.as_ref())
            .and_then(|r| r.state),
        Some(ReconciliationState::Deployed)
    );
}

#[test]
fn a_deploy_in_flight_deploys_the_same_plan_again() {
    let d = session();
    let first = run(&d, &absent());
    let hash = deploy_plan(&first).plan_hash.clone();
    let d = persisted(&d, &first);
    for obs in [absent(), cluster(&hash, false)] {
        let again = run(&d, &obs);
        assert_eq!(deploy_plan(&again).plan_hash, hash);
        assert_eq!(recon_state(&again), Some(ReconciliationState::Upgrading));
    }
}

#[test]
fn a_deploy_in_flight_deletes_a_cluster_of_another_plan_first() {
    let d = persisted(&session(), &run(&session(), &absent()));
    let other = run(&d, &cluster("0123456789abcdef", true));
    assert_eq!(other.actions, vec![Action::DeleteCluster]);
}

#[test]
fn a_standalone_session_cluster_scales_its_taskmanagers_in_place() {
    let base = session()
        .with_mode(DeploymentMode::Standalone)
        .with_task_managers(1);
    let (d, hash) = deployed_session(base);
    let mut scaled = d.clone().with_task_managers(3);
    scaled.metadata.generation = Some(2);
    let decision = run(&scaled, &cluster(&hash, true));
    match decision.actions.as_slice() {
        [Action::Scale { taskmanagers, .. }] => assert_eq!(*taskmanagers, 3),
        other => panic!("expected a Scale, got {other:?}"),
    }
    assert_eq!(recon_state(&decision), Some(ReconciliationState::Deployed));
}

#[test]
fn an_invalid_change_is_reported_and_the_cluster_left_alone() {
    let (d, hash) = deployed_session(session());
    let mut invalid = d.clone();
    invalid.spec.flink_version = None;
    invalid.metadata.generation = Some(2);
    let decision = run(&invalid, &cluster(&hash, true));
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);
    assert!(
        decision
            .status
            .error
            .as_deref()
            .is_some_and(|e| e.contains("spec.flinkVersion")),
        "{:?}",
        decision.status.error
    );
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.reason == EventReason::ValidationError)
    );
}

#[test]
fn a_session_cluster_cannot_become_an_application() {
    let (d, hash) = deployed_session(session());
    let mut app = d.clone().application();
    app.metadata.generation = Some(2);
    let decision = run(&app, &cluster(&hash, true));
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);
    assert!(
        decision
            .status
            .error
            .as_deref()
            .is_some_and(|e| e.contains("spec.job")),
        "{:?}",
        decision.status.error
    );
}

#[test]
fn an_application_cannot_become_a_session_cluster() {
    let d = deployed(app(UpgradeMode::Savepoint));
    let mut session = d.clone();
    session.spec.job = None;
    session.metadata.generation = Some(2);
    let decision = run(
        &session,
        &running_cluster(job(OLD_JOB, FlinkJobState::Running)),
    );
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);
    assert!(
        decision
            .status
            .error
            .as_deref()
            .is_some_and(|e| e.contains("spec.job")),
        "{:?}",
        decision.status.error
    );
}

#[test]
fn deleting_a_session_cluster_deletes_it_then_finishes() {
    let (d, hash) = deployed_session(session());
    let deleting = super::stops::deleting(d);
    let first = run(&deleting, &cluster(&hash, true));
    assert_eq!(first.actions, vec![Action::DeleteCluster]);
    let second = run(&acted(&deleting, &first), &absent());
    assert_eq!(second.actions, vec![Action::FinishDeletion]);
}

fn jobmanager_died(plan_hash: &str) -> Observation {
    Observation {
        cluster: ClusterObservation::Failed {
            plan_hash: Some(plan_hash.to_string()),
            reason: "the JobManager exited (killed by signal 9)".into(),
            log_tail: None,
        },
        job: JobObservation::Unknown {
            reason: "the JobManager is not running".into(),
        },
        ..cluster(plan_hash, false)
    }
}

/// `d` deployed and READY.
fn ready_session(d: FlinkDeployment) -> (FlinkDeployment, String) {
    let (d, hash) = deployed_session(d);
    let ready = run(&d, &cluster(&hash, true));
    (persisted(&d, &ready), hash)
}

#[test]
fn a_session_cluster_whose_jobmanager_died_is_deployed_again() {
    let (d, hash) = ready_session(session());
    let recover = run(&d, &jobmanager_died(&hash));
    assert_eq!(recover.actions, vec![Action::DeleteCluster]);
    assert_eq!(recon_state(&recover), Some(ReconciliationState::Upgrading));
    assert_eq!(target_spec(&recover.status), Some(d.spec.clone()));
    let event = recover
        .events
        .iter()
        .find(|e| e.reason == EventReason::RecoverDeployment)
        .expect("a RecoverDeployment event");
    assert!(event.message.contains("killed by signal 9"), "{event:?}");

    // what is left is deleted, then the same plan deployed
    let gone = acted(&d, &recover);
    let deploy = run(&gone, &absent());
    assert_eq!(deploy_plan(&deploy).plan_hash, hash);
}

#[test]
fn a_session_cluster_whose_jobmanager_died_stays_down_without_jm_recovery() {
    let d = session().with_config(
        "kubernetes.operator.jm-deployment-recovery.enabled",
        "false",
    );
    let (d, hash) = ready_session(d);
    let lost = run(&d, &jobmanager_died(&hash));
    assert!(lost.actions.is_empty(), "{:?}", lost.actions);
    assert!(
        lost.events.iter().any(|e| e.reason == EventReason::Missing
            && e.message
                .contains("jm-deployment-recovery.enabled is false")),
        "{:?}",
        lost.events
    );
}

#[test]
fn a_taskmanager_of_a_session_cluster_that_died_is_started_again_where_nothing_else_does() {
    let (d, hash) = ready_session(session());
    let mut obs = cluster(&hash, true);
    obs.cluster = ClusterObservation::Running {
        plan_hash: Some(hash.clone()),
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
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.reason == EventReason::RecoverDeployment
                && e.message.contains("0 of 1 TaskManagers run")),
        "{:?}",
        decision.events
    );
    // Kubernetes restarts pods itself
    let decision = run(&d, &obs);
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);
}
