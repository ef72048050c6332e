//! Transitions that stop a job: upgrades in every mode, suspend/resume, deletion, triggers.

use api::{
    DeploymentMode, FlinkJobState, JobState, ReconciliationState, ResourceLifecycleState,
    UpgradeMode,
};
use rstest::rstest;

use super::transitions::{deploy_plan, lifecycle, with_args};
use super::*;
use crate::action::{Action, EventReason, Outcome};

// ---- Upgrades -------------------------------------------------------------------------------

#[test]
fn savepoint_upgrade_records_the_trigger_before_stopping() {
    let d = deployed(app(UpgradeMode::Savepoint));
    let changed = with_args(d, &["--rate", "20"]);
    let decision = run(
        &changed,
        &running_cluster(job(OLD_JOB, FlinkJobState::Running)),
    );
    match decision.actions.as_slice() {
        [Action::StopWithSavepoint(call)] => {
            assert_eq!(call.trigger_id, TRIGGER);
            assert!(!call.drain);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(trigger_of(&decision).as_deref(), Some(TRIGGER));
    assert_eq!(recon_state(&decision), Some(ReconciliationState::Upgrading));
    let target = target_spec(&decision.status).unwrap();
    let job = target.job.unwrap();
    assert_eq!(job.state(), JobState::Suspended);
    assert_eq!(job.upgrade_mode(), UpgradeMode::Savepoint);
    assert_eq!(job.args(), ["--rate", "20"]);
    assert_eq!(path_of(&decision), None);
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.reason == EventReason::SpecChanged)
    );
}

#[test]
fn savepoint_upgrade_waits_for_the_stop_then_deletes_then_deploys_from_the_savepoint() {
    let d = with_args(deployed(app(UpgradeMode::Savepoint)), &["--rate", "20"]);
    let step1 = run(&d, &running_cluster(job(OLD_JOB, FlinkJobState::Running)));
    let d = acted(&d, &step1);

    let mut obs = running_cluster(job(OLD_JOB, FlinkJobState::Running));
    obs.trigger = Some(TriggerObservation {
        trigger_id: TRIGGER.into(),
        state: TriggerState::InProgress,
    });
    let waiting = run(&d, &obs);
    assert!(waiting.actions.is_empty());
    assert_eq!(waiting.requeue_after, settings().transition_interval);

    let mut obs = running_cluster(job(OLD_JOB, FlinkJobState::Finished));
    obs.trigger = Some(TriggerObservation {
        trigger_id: TRIGGER.into(),
        state: TriggerState::Completed {
            location: Some("file:/fp/savepoints/savepoint-abc".into()),
        },
    });
    let stopped = run(&d, &obs);
    assert_eq!(job_actions(&stopped), vec![Action::DeleteCluster]);
    // the upgrade savepoint is also registered as a FlinkStateSnapshot, created last
    match stopped.actions.last() {
        Some(Action::CreateSnapshotResource(s)) => {
            let sp = s.spec.savepoint.as_ref().unwrap();
            assert_eq!(
                sp.path.as_deref(),
                Some("file:/fp/savepoints/savepoint-abc")
            );
            assert_eq!(sp.already_exists, Some(true));
            assert_eq!(
                sp.dispose_on_delete,
                Some(true),
                "retention deleting it disposes its files too"
            );
            assert_eq!(
                crate::snapshot::trigger_type(s),
                api::SnapshotTriggerType::Upgrade
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        path_of(&stopped).as_deref(),
        Some("file:/fp/savepoints/savepoint-abc")
    );
    let d = acted(&d, &stopped);

    let deploy = run(&d, &absent());
    let plan = deploy_plan(&deploy);
    assert_eq!(
        plan.job.as_ref().unwrap().restore.as_ref().unwrap().path,
        "file:/fp/savepoints/savepoint-abc"
    );
    assert_eq!(plan.job.as_ref().unwrap().job_id, NEW_JOB);
    assert_eq!(plan.job.as_ref().unwrap().args, ["--rate", "20"]);
    let target = target_spec(&deploy.status).unwrap();
    assert_eq!(target.job.unwrap().state(), JobState::Running);
    assert_eq!(recon_state(&deploy), Some(ReconciliationState::Upgrading));
}

#[test]
fn a_stop_whose_savepoint_is_recorded_but_job_lingers_is_cancelled() {
    let d = with_args(deployed(app(UpgradeMode::Savepoint)), &["x"]);
    let target = super::super::suspended_copy(&d.spec, UpgradeMode::Savepoint);
    let d = set_path(
        with_target(d, &target, ReconciliationState::Upgrading),
        Some("file:/fp/savepoints/sp"),
    );
    let decision = run(&d, &running_cluster(job(OLD_JOB, FlinkJobState::Running)));
    assert_eq!(
        decision.actions,
        vec![Action::CancelJob {
            job_id: OLD_JOB.into()
        }]
    );
}

#[test]
fn a_savepoint_upgrade_of_a_failed_job_is_blocked_until_another_mode_is_chosen() {
    let d = with_args(
        deployed(app(UpgradeMode::Savepoint).with_config(
            "kubernetes.operator.job.upgrade.last-state-fallback.enabled",
            "false",
        )),
        &["x"],
    );
    let decision = run(&d, &running_cluster(job(OLD_JOB, FlinkJobState::Failed)));
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);
    let error = decision.status.error.clone().unwrap();
    assert!(error.starts_with(super::super::upgrade::BLOCKED), "{error}");
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.reason == EventReason::UpgradeBlocked)
    );
    // choosing last-state with a checkpoint on storage unblocks it
    let mut d2 = persisted(&d, &decision);
    d2.spec.job.as_mut().unwrap().upgrade_mode = Some(UpgradeMode::LastState);
    let mut obs = running_cluster(job(OLD_JOB, FlinkJobState::Failed));
    obs.latest_checkpoint = Some(checkpoint(9, Some(true)));
    let next = run(&d2, &obs);
    assert_eq!(next.actions, vec![Action::DeleteCluster]);
    assert_eq!(path_of(&next), Some(checkpoint(9, None).path));
    assert_eq!(
        target_spec(&next.status)
            .unwrap()
            .job
            .unwrap()
            .upgrade_mode(),
        UpgradeMode::LastState
    );
}

#[test]
fn last_state_upgrade_records_the_checkpoint_then_cancels() {
    let d = with_args(deployed(app(UpgradeMode::LastState)), &["x"]);
    let mut obs = running_cluster(job(OLD_JOB, FlinkJobState::Running));
    obs.latest_checkpoint = Some(checkpoint(4, Some(true)));
    let decision = run(&d, &obs);
    assert_eq!(
        decision.actions,
        vec![Action::CancelJob {
            job_id: OLD_JOB.into()
        }]
    );
    assert_eq!(path_of(&decision), Some(checkpoint(4, None).path));
}

#[rstest]
#[case::no_checkpoint(None)]
#[case::not_on_storage(Some(checkpoint(4, Some(false))))]
fn last_state_upgrade_without_a_provable_checkpoint_destroys_nothing(
    #[case] latest: Option<CheckpointRef>,
) {
    let d = with_args(deployed(app(UpgradeMode::LastState)), &["x"]);
    let mut obs = running_cluster(job(OLD_JOB, FlinkJobState::Running));
    obs.latest_checkpoint = latest;
    let decision = run(&d, &obs);
    assert!(decision.actions.is_empty(), "{:?}", decision.actions);
    assert!(
        decision
            .status
            .error
            .clone()
            .unwrap()
            .contains("checkpoint")
    );
    assert_eq!(path_of(&decision), None);
}

#[test]
fn last_state_records_a_newer_checkpoint_after_the_cancel_before_deleting() {
    let d = with_args(deployed(app(UpgradeMode::LastState)), &["x"]);
    let target = super::super::suspended_copy(&d.spec, UpgradeMode::LastState);
    let d = set_path(
        with_target(d, &target, ReconciliationState::Upgrading),
        Some(&checkpoint(4, None).path),
    );
    let mut obs = running_cluster(job(OLD_JOB, FlinkJobState::Canceled));
    obs.latest_checkpoint = Some(checkpoint(5, Some(true)));
    let decision = run(&d, &obs);
    assert_eq!(decision.actions, vec![Action::DeleteCluster]);
    assert_eq!(path_of(&decision), Some(checkpoint(5, None).path));
}

#[test]
fn last_state_with_the_jobmanager_gone_falls_back_to_the_checkpoint_on_storage() {
    let d = with_args(deployed(app(UpgradeMode::LastState)), &["x"]);
    let mut obs = absent();
    obs.cluster = ClusterObservation::Failed {
        plan_hash: None,
        reason: "killed".into(),
        log_tail: None,
    };
    obs.latest_checkpoint = Some(checkpoint(11, Some(true)));
    let decision = run(&d, &obs);
    assert_eq!(decision.actions, vec![Action::DeleteCluster]);
    assert_eq!(path_of(&decision), Some(checkpoint(11, None).path));
    // and without any checkpoint: refused, nothing deleted
    obs.latest_checkpoint = None;
    let refused = run(&d, &obs);
    assert!(refused.actions.is_empty());
    assert!(
        refused
            .status
            .error
            .unwrap()
            .contains("nothing was deleted")
    );
}

#[test]
fn last_state_upgrade_of_a_cluster_that_deletes_checkpoints_on_cancel_is_blocked() {
    let d = deployed(
        app(UpgradeMode::Savepoint)
            .with_config(crate::plan_builder::RETENTION_KEY, "DELETE_ON_CANCELLATION"),
    );
    let mut changed = with_args(d, &["x"]);
    changed.spec.job.as_mut().unwrap().upgrade_mode = Some(UpgradeMode::LastState);
    let decision = run(
        &changed,
        &running_cluster(job(OLD_JOB, FlinkJobState::Running)),
    );
    assert!(decision.actions.is_empty());
    assert_eq!(recon_state(&decision), Some(ReconciliationState::Deployed));
    let error = decision.status.error.unwrap();
    assert!(
        error.contains(crate::plan_builder::RETENTION_KEY),
        "{error}"
    );
}

#[test]
fn stateless_upgrade_cancels_deletes_and_deploys_fresh() {
    let d = with_args(deployed(app(UpgradeMode::Stateless)), &["x"]);
    let d = set_path(d, Some("file:/fp/savepoints/old"));
    let step1 = run(&d, &running_cluster(job(OLD_JOB, FlinkJobState::Running)));
    assert_eq!(
        step1.actions,
        vec![Action::CancelJob {
            job_id: OLD_JOB.into()
        }]
    );
    assert_eq!(path_of(&step1), None, "a stale path must not be restored");
    let d = acted(&d, &step1);
    let step2 = run(&d, &running_cluster(job(OLD_JOB, FlinkJobState::Canceled)));
    assert_eq!(step2.actions, vec![Action::DeleteCluster]);
    let d = acted(&d, &step2);
    let step3 = run(&d, &absent());
    assert_eq!(deploy_plan(&step3).job.as_ref().unwrap().restore, None);
}

#[test]
fn restart_nonce_restarts_with_state() {
    let d = deployed(app(UpgradeMode::Savepoint));
    let mut changed = d.clone();
    changed.spec.restart_nonce = Some(3);
    let decision = run(
        &changed,
        &running_cluster(job(OLD_JOB, FlinkJobState::Running)),
    );
    assert!(matches!(
        decision.actions.as_slice(),
        [Action::StopWithSavepoint(_)]
    ));
}

#[test]
fn savepoint_redeploy_cancels_and_restores_from_the_new_initial_savepoint() {
    let d = deployed(app(UpgradeMode::Savepoint));
    let mut changed = d.clone();
    let job = changed.spec.job.as_mut().unwrap();
    job.initial_savepoint_path = Some("file:///elsewhere/sp-9".into());
    job.savepoint_redeploy_nonce = Some(1);
    let step1 = run(
        &changed,
        &running_cluster(super::job(OLD_JOB, FlinkJobState::Running)),
    );
    assert_eq!(
        step1.actions,
        vec![Action::CancelJob {
            job_id: OLD_JOB.into()
        }]
    );
    assert_eq!(path_of(&step1).as_deref(), Some("file:///elsewhere/sp-9"));
    let d = acted(&changed, &step1);
    let step2 = run(
        &d,
        &running_cluster(super::job(OLD_JOB, FlinkJobState::Canceled)),
    );
    assert_eq!(step2.actions, vec![Action::DeleteCluster]);
    let d = acted(&d, &step2);
    let step3 = run(&d, &absent());
    assert_eq!(
        deploy_plan(&step3)
            .job
            .as_ref()
            .unwrap()
            .restore
            .as_ref()
            .unwrap()
            .path,
        "file:///elsewhere/sp-9"
    );
}

#[test]
fn a_spec_made_invalid_before_the_stop_started_stops_nothing() {
    let d = with_args(deployed(app(UpgradeMode::Savepoint)), &["x"]);
    let target = super::super::suspended_copy(&d.spec, UpgradeMode::Savepoint);
    let mut d = with_target(d, &target, ReconciliationState::Upgrading);
    d.spec.job.as_mut().unwrap().parallelism = Some(-3);
    let decision = run(&d, &running_cluster(job(OLD_JOB, FlinkJobState::Running)));
    assert!(decision.actions.is_empty());
    assert!(decision.status.error.unwrap().starts_with(INVALID_SPEC));
}

#[test]
fn standalone_reactive_scale_changes_taskmanagers_in_place() {
    let d = deployed(
        app(UpgradeMode::Savepoint)
            .with_mode(DeploymentMode::Standalone)
            .with_config("scheduler-mode", "reactive")
            .with_task_managers(1),
    );
    let mut changed = d.clone();
    changed.spec.task_manager.as_mut().unwrap().replicas = Some(3);
    let decision = run(
        &changed,
        &running_cluster(job(OLD_JOB, FlinkJobState::Running)),
    );
    let action = match decision.actions.as_slice() {
        [
            a @ Action::Scale {
                taskmanagers: 3, ..
            },
        ] => a.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(recon_state(&decision), Some(ReconciliationState::Deployed));
    let (status, _) = apply_outcome(&decision.status, &action, &Outcome::Done, NOW);
    let target = target_spec(&status).unwrap();
    assert_eq!(target.task_manager.unwrap().replicas, Some(3));
}

// ---- Suspend / resume ------------------------------------------------------------------------

#[test]
fn suspend_takes_a_savepoint_and_ends_suspended_with_the_path_kept() {
    let d = deployed(app(UpgradeMode::Savepoint)).suspended();
    let step1 = run(&d, &running_cluster(job(OLD_JOB, FlinkJobState::Running)));
    assert!(matches!(
        step1.actions.as_slice(),
        [Action::StopWithSavepoint(_)]
    ));
    let d = acted(&d, &step1);
    let mut obs = running_cluster(job(OLD_JOB, FlinkJobState::Finished));
    obs.trigger = Some(TriggerObservation {
        trigger_id: TRIGGER.into(),
        state: TriggerState::Completed {
            location: Some("file:/fp/savepoints/sp-1".into()),
        },
    });
    let step2 = run(&d, &obs);
    assert_eq!(job_actions(&step2), vec![Action::DeleteCluster]);
    let d = acted(&d, &step2);
    let step3 = run(&d, &absent());
    assert!(step3.actions.is_empty());
    assert_eq!(recon_state(&step3), Some(ReconciliationState::Deployed));
    assert_eq!(lifecycle(&step3), ResourceLifecycleState::Suspended);
    assert_eq!(path_of(&step3).as_deref(), Some("file:/fp/savepoints/sp-1"));
    assert_eq!(
        step3.status.job_status.as_ref().unwrap().state,
        Some(FlinkJobState::Finished),
        "the last state Flink reported stays"
    );
    assert!(
        step3
            .events
            .iter()
            .any(|e| e.reason == EventReason::Suspended)
    );
    assert!(
        step3
            .status
            .reconciliation_status
            .unwrap()
            .is_last_reconciled_spec_stable()
    );
}

#[rstest]
#[case::savepoint(UpgradeMode::Savepoint, Some("file:/fp/savepoints/sp-1"))]
#[case::last_state(UpgradeMode::LastState, Some("file:/fp/savepoints/sp-1"))]
#[case::stateless(UpgradeMode::Stateless, None)]
fn resume_deploys_from_the_recorded_state(
    #[case] mode: UpgradeMode,
    #[case] expected: Option<&str>,
) {
    let suspended = deployed(app(mode)).suspended();
    let d = set_path(
        with_target(
            suspended.clone(),
            &suspended.spec,
            ReconciliationState::Deployed,
        ),
        Some("file:/fp/savepoints/sp-1"),
    );
    let mut resumed = d.clone();
    resumed.spec.job.as_mut().unwrap().state = Some(JobState::Running);
    let decision = run(&resumed, &absent());
    let plan = deploy_plan(&decision);
    assert_eq!(
        plan.job
            .as_ref()
            .unwrap()
            .restore
            .as_ref()
            .map(|r| r.path.as_str()),
        expected
    );
    assert_eq!(path_of(&decision).as_deref(), expected);
}

#[test]
fn changes_while_suspended_are_recorded_for_the_resume() {
    let d = deployed(app(UpgradeMode::Savepoint).suspended());
    let changed = with_args(d, &["--rate", "1"]);
    let decision = run(&changed, &absent());
    assert!(decision.actions.is_empty());
    assert_eq!(
        target_spec(&decision.status).unwrap().job.unwrap().args(),
        ["--rate", "1"]
    );
}

// ---- Deletion -------------------------------------------------------------------------------

pub(super) fn deleting(mut d: FlinkDeployment) -> FlinkDeployment {
    d.metadata.deletion_timestamp =
        serde_json::from_value(serde_json::json!("2027-01-01T00:00:00Z")).ok();
    assert!(d.metadata.deletion_timestamp.is_some());
    d
}

#[test]
fn deletion_removes_the_cluster_then_the_resource() {
    let d = deleting(deployed(app(UpgradeMode::Savepoint)));
    let step1 = run(&d, &running_cluster(job(OLD_JOB, FlinkJobState::Running)));
    assert_eq!(step1.actions, vec![Action::DeleteCluster]);
    assert_eq!(lifecycle(&step1), ResourceLifecycleState::Deleting);
    let step2 = run(&acted(&d, &step1), &absent());
    assert_eq!(step2.actions, vec![Action::FinishDeletion]);
}

#[test]
fn savepoint_on_deletion_stops_with_a_savepoint_first() {
    let d = deleting(deployed(
        app(UpgradeMode::Savepoint)
            .with_config(super::super::delete::SAVEPOINT_ON_DELETION, "true"),
    ));
    let step1 = run(&d, &running_cluster(job(OLD_JOB, FlinkJobState::Running)));
    assert!(matches!(
        step1.actions.as_slice(),
        [Action::StopWithSavepoint(_)]
    ));
    let d = acted(&d, &step1);
    let mut obs = running_cluster(job(OLD_JOB, FlinkJobState::Finished));
    obs.trigger = Some(TriggerObservation {
        trigger_id: TRIGGER.into(),
        state: TriggerState::Completed {
            location: Some("file:/fp/savepoints/final".into()),
        },
    });
    let step2 = run(&d, &obs);
    assert_eq!(job_actions(&step2), vec![Action::DeleteCluster]);
    let last = step2
        .status
        .job_status
        .unwrap()
        .savepoint_info
        .unwrap()
        .last_savepoint
        .unwrap();
    assert_eq!(last.location.as_deref(), Some("file:/fp/savepoints/final"));
}

#[test]
fn a_never_deployed_resource_is_deleted_at_once() {
    let d = deleting(app(UpgradeMode::Savepoint));
    assert_eq!(run(&d, &absent()).actions, vec![Action::FinishDeletion]);
}

// ---- Triggers -------------------------------------------------------------------------------

#[test]
fn a_trigger_the_jobmanager_forgot_is_taken_again() {
    let d = with_args(deployed(app(UpgradeMode::Savepoint)), &["x"]);
    let target = super::super::suspended_copy(&d.spec, UpgradeMode::Savepoint);
    let d = set_trigger(
        with_target(d, &target, ReconciliationState::Upgrading),
        "000000000000000000000000000000bb",
    );
    let mut obs = running_cluster(job(OLD_JOB, FlinkJobState::Running));
    obs.trigger = Some(TriggerObservation {
        trigger_id: "000000000000000000000000000000bb".into(),
        state: TriggerState::Unknown,
    });
    let decision = run(&d, &obs);
    match decision.actions.as_slice() {
        [Action::StopWithSavepoint(call)] => assert_eq!(call.trigger_id, TRIGGER),
        other => panic!("{other:?}"),
    }
    assert_eq!(trigger_of(&decision).as_deref(), Some(TRIGGER));
}

#[test]
fn observe_needs_asks_for_checkpoints_only_in_last_state_mode() {
    let d = deployed(app(UpgradeMode::LastState));
    let needs = observe_needs(&d, &settings());
    assert!(needs.latest_checkpoint);
    assert_eq!(needs.job_id.as_deref(), Some(OLD_JOB));
    assert_eq!(
        needs.checkpoint_dir.as_deref(),
        Some("file:///fp/checkpoints")
    );
    let d = deployed(app(UpgradeMode::Savepoint));
    assert!(!observe_needs(&d, &settings()).latest_checkpoint);
}
