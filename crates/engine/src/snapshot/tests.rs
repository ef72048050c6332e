//! Tests of `decide_snapshot` and `apply_snapshot_outcome`: one snapshot's life from trigger to
//! completion, retries, abandonment, registration and deletion — pure, no Flink.

use std::time::Duration;

use api::{
    FlinkDeployment, FlinkJobState, FlinkStateSnapshot, FlinkStateSnapshotState as State, JobKind,
    JobStatus, UpgradeMode,
};

use super::*;
use crate::action::{EventReason, Outcome};
use crate::observation::TriggerState;
use crate::settings::Settings;

const NOW: i64 = 1_800_000_000_000;
const JOB: &str = "00000000000000000000000000000001";
const TRIGGER: &str = "000000000000000000000000000000aa";

fn settings() -> Settings {
    Settings {
        transition_interval: Duration::from_millis(100),
        retry_interval: Duration::from_secs(10),
        ..Settings::default()
    }
}

/// A deployment with state directories whose job `JOB` is in `state`.
fn deployment(state: FlinkJobState) -> FlinkDeployment {
    let mut d = FlinkDeployment::test("counter")
        .application()
        .with_upgrade_mode(UpgradeMode::Savepoint)
        .with_state_dirs("file:///fp")
        .deployed();
    d.status.get_or_insert_with(Default::default).job_status = Some(JobStatus {
        job_id: Some(JOB.into()),
        state: Some(state),
        ..Default::default()
    });
    d
}

fn savepoint() -> FlinkStateSnapshot {
    FlinkStateSnapshot::test_savepoint("sp", JobKind::FlinkDeployment, "counter")
}

fn decide_at(
    s: &FlinkStateSnapshot,
    target: Option<&FlinkDeployment>,
    observed: &SnapshotObserved,
    now_ms: i64,
) -> SnapshotDecision {
    decide_snapshot(SnapshotInput {
        snapshot: s,
        target,
        observed,
        settings: &settings(),
        now_ms,
        fresh_trigger_id: TRIGGER,
        session_jobs: false,
    })
}

fn decide(
    s: &FlinkStateSnapshot,
    target: Option<&FlinkDeployment>,
    observed: &SnapshotObserved,
) -> SnapshotDecision {
    decide_at(s, target, observed, NOW)
}

fn with_status(mut s: FlinkStateSnapshot, d: &SnapshotDecision) -> FlinkStateSnapshot {
    s.status = Some(d.status.clone());
    s.metadata.labels = Some(d.labels.clone());
    s
}

fn trigger(state: TriggerState) -> SnapshotObserved {
    SnapshotObserved {
        trigger: Some(state),
        exists: None,
        cluster_running: true,
    }
}

fn deleting(mut s: FlinkStateSnapshot) -> FlinkStateSnapshot {
    s.metadata.deletion_timestamp =
        serde_json::from_value(serde_json::json!("2027-01-01T00:00:00Z")).ok();
    assert!(s.metadata.deletion_timestamp.is_some());
    s
}

fn completed_at(path: &str) -> FlinkStateSnapshot {
    let mut s = savepoint();
    s.status = Some(api::FlinkStateSnapshotStatus {
        state: Some(State::Completed),
        path: Some(path.into()),
        ..Default::default()
    });
    s
}

#[test]
fn a_savepoint_is_recorded_in_progress_before_it_is_triggered_into_the_deployments_dir() {
    let d = deployment(FlinkJobState::Running);
    let decision = decide(&savepoint(), Some(&d), &SnapshotObserved::default());
    assert_eq!(decision.status.state, Some(State::InProgress));
    assert_eq!(decision.status.trigger_id.as_deref(), Some(TRIGGER));
    match decision.actions.as_slice() {
        [SnapshotAction::TriggerSavepoint(call)] => {
            assert_eq!(call.job_id, JOB);
            assert_eq!(call.trigger_id, TRIGGER);
            assert_eq!(
                call.target_dir.as_deref(),
                Some("file:///fp/savepoints"),
                "the deployment's savepoint dir"
            );
            assert!(!call.drain);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(decision.labels[LABEL_STATE], "IN_PROGRESS");
    assert_eq!(decision.labels[LABEL_SNAPSHOT_TYPE], "SAVEPOINT");
    assert_eq!(decision.labels[LABEL_TRIGGER_TYPE], "MANUAL");
    assert_eq!(decision.labels[LABEL_JOB_REFERENCE_NAME], "counter");
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.reason == EventReason::SnapshotTriggered)
    );
}

#[test]
fn a_path_in_the_spec_is_where_the_savepoint_goes() {
    let d = deployment(FlinkJobState::Running);
    let mut s = savepoint();
    s.spec.savepoint.as_mut().unwrap().path = Some("file:///elsewhere".into());
    let decision = decide(&s, Some(&d), &SnapshotObserved::default());
    match decision.actions.as_slice() {
        [SnapshotAction::TriggerSavepoint(call)] => {
            assert_eq!(call.target_dir.as_deref(), Some("file:///elsewhere"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_completed_savepoint_records_its_path_and_settles() {
    let d = deployment(FlinkJobState::Running);
    let s = with_status(
        savepoint(),
        &decide(&savepoint(), Some(&d), &SnapshotObserved::default()),
    );
    let waiting = decide(&s, Some(&d), &trigger(TriggerState::InProgress));
    assert_eq!(waiting.status.state, Some(State::InProgress));
    assert!(waiting.actions.is_empty());
    assert_eq!(waiting.requeue_after, Some(settings().transition_interval));

    let done = decide(
        &s,
        Some(&d),
        &trigger(TriggerState::Completed {
            location: Some("file:/fp/savepoints/savepoint-1".into()),
        }),
    );
    assert_eq!(done.status.state, Some(State::Completed));
    assert_eq!(
        done.status.path.as_deref(),
        Some("file:/fp/savepoints/savepoint-1")
    );
    assert_eq!(done.status.trigger_id, None);
    assert_eq!(done.requeue_after, None, "settled: only a change wakes it");
    assert_eq!(done.labels[LABEL_STATE], "COMPLETED");
    assert!(
        done.events
            .iter()
            .any(|e| e.reason == EventReason::SavepointCreated)
    );
    let again = decide(
        &with_status(s, &done),
        Some(&d),
        &SnapshotObserved::default(),
    );
    assert!(
        again.actions.is_empty(),
        "a completed snapshot is not taken again"
    );
}

#[test]
fn a_failed_savepoint_is_retried_with_backoff_then_failed_after_the_backoff_limit() {
    let d = deployment(FlinkJobState::Running);
    let mut s = savepoint();
    s.spec.backoff_limit = Some(1);
    let cause = || TriggerState::Failed {
        cause: "java.io.IOException: Mkdirs failed to create file:/blocked".into(),
    };

    // attempt 1 fails: back to TRIGGER_PENDING, retried after retry_interval
    let s = with_status(
        s.clone(),
        &decide(&s, Some(&d), &SnapshotObserved::default()),
    );
    let failed = decide(&s, Some(&d), &trigger(cause()));
    assert_eq!(failed.status.state, Some(State::TriggerPending));
    assert_eq!(failed.status.failures, Some(1));
    assert!(failed.status.error.as_deref().unwrap().contains("Mkdirs"));
    assert_eq!(failed.requeue_after, Some(Duration::from_secs(10)));
    assert!(
        failed
            .events
            .iter()
            .any(|e| e.reason == EventReason::SavepointError)
    );
    let s = with_status(s, &failed);

    // not before the backoff is over …
    let early = decide_at(&s, Some(&d), &SnapshotObserved::default(), NOW + 4_000);
    assert!(early.actions.is_empty());
    assert_eq!(early.requeue_after, Some(Duration::from_secs(6)));
    // … then attempt 2, which fails too: FAILED, no further retry
    let retry = decide_at(&s, Some(&d), &SnapshotObserved::default(), NOW + 10_000);
    assert!(matches!(
        retry.actions.as_slice(),
        [SnapshotAction::TriggerSavepoint(_)]
    ));
    let s = with_status(s, &retry);
    let final_ = decide_at(&s, Some(&d), &trigger(cause()), NOW + 11_000);
    assert_eq!(final_.status.state, Some(State::Failed));
    assert_eq!(final_.status.failures, Some(2));
    assert!(final_.status.error.as_deref().unwrap().contains("Mkdirs"));
    assert_eq!(final_.requeue_after, None);
    assert_eq!(final_.labels[LABEL_STATE], "FAILED");
    let s = with_status(s, &final_);
    assert!(
        decide_at(&s, Some(&d), &SnapshotObserved::default(), NOW + 60_000)
            .actions
            .is_empty(),
        "a FAILED snapshot is not retried"
    );
}

#[test]
fn retries_double_their_wait() {
    let s = settings();
    assert_eq!(retry_delay_for(&s, 1), Duration::from_secs(10));
    assert_eq!(retry_delay_for(&s, 2), Duration::from_secs(20));
    assert_eq!(retry_delay_for(&s, 4), Duration::from_secs(80));
}

fn retry_delay_for(s: &Settings, failures: i32) -> Duration {
    decide::retry_delay(s, failures)
}

#[test]
fn a_refused_trigger_counts_as_a_failed_attempt() {
    let d = deployment(FlinkJobState::Running);
    let mut s = savepoint();
    s.spec.backoff_limit = Some(0);
    let decision = decide(&s, Some(&d), &SnapshotObserved::default());
    let (status, events, requeue) = apply_snapshot_outcome(
        &decision.status,
        &s,
        &decision.actions[0],
        &Outcome::Failed {
            message: "connection refused".into(),
            transient: true,
        },
        &settings(),
        NOW,
    );
    assert_eq!(
        status.state,
        Some(State::Failed),
        "backoffLimit 0: no retry"
    );
    assert!(status.error.unwrap().contains("connection refused"));
    assert_eq!(requeue, None);
    assert!(
        events
            .iter()
            .any(|e| e.reason == EventReason::SavepointError)
    );
}

#[test]
fn a_snapshot_of_a_job_that_does_not_run_is_abandoned() {
    let stopped = deployment(FlinkJobState::Finished);
    let decision = decide(&savepoint(), Some(&stopped), &SnapshotObserved::default());
    assert_eq!(decision.status.state, Some(State::Abandoned));
    assert!(decision.actions.is_empty());
    assert!(decision.status.error.unwrap().contains("not running"));

    let missing = decide(&savepoint(), None, &SnapshotObserved::default());
    assert_eq!(missing.status.state, Some(State::Abandoned));
    assert!(missing.status.error.unwrap().contains("not found"));

    // in progress when the job stops
    let d = deployment(FlinkJobState::Running);
    let s = with_status(
        savepoint(),
        &decide(&savepoint(), Some(&d), &SnapshotObserved::default()),
    );
    let abandoned = decide(&s, Some(&stopped), &SnapshotObserved::default());
    assert_eq!(abandoned.status.state, Some(State::Abandoned));
    assert!(
        abandoned
            .events
            .iter()
            .any(|e| e.reason == EventReason::SnapshotAbandoned)
    );
}

#[test]
fn a_trigger_the_jobmanager_does_not_know_is_sent_again_under_the_same_id() {
    let d = deployment(FlinkJobState::Running);
    let s = with_status(
        savepoint(),
        &decide(&savepoint(), Some(&d), &SnapshotObserved::default()),
    );
    let mut other_fresh = settings();
    other_fresh.transition_interval = Duration::from_millis(100);
    let again = decide_snapshot(SnapshotInput {
        snapshot: &s,
        target: Some(&d),
        observed: &trigger(TriggerState::Unknown),
        settings: &other_fresh,
        now_ms: NOW + 1000,
        fresh_trigger_id: "000000000000000000000000000000bb",
        session_jobs: false,
    });
    match again.actions.as_slice() {
        [SnapshotAction::TriggerSavepoint(call)] => assert_eq!(call.trigger_id, TRIGGER),
        other => panic!("{other:?}"),
    }
    assert_eq!(again.status.state, Some(State::InProgress));
}

#[test]
fn a_checkpoint_snapshot_triggers_a_checkpoint_and_records_its_path() {
    let d = deployment(FlinkJobState::Running);
    let s = FlinkStateSnapshot::test_checkpoint("chk", JobKind::FlinkDeployment, "counter");
    let decision = decide(&s, Some(&d), &SnapshotObserved::default());
    assert_eq!(
        decision.actions,
        vec![SnapshotAction::TriggerCheckpoint {
            job_id: JOB.into(),
            trigger_id: TRIGGER.into()
        }]
    );
    assert_eq!(decision.labels[LABEL_SNAPSHOT_TYPE], "CHECKPOINT");
    let s = with_status(s, &decision);
    let done = decide(
        &s,
        Some(&d),
        &trigger(TriggerState::Completed {
            location: Some("file:/fp/checkpoints/j/chk-4".into()),
        }),
    );
    assert_eq!(done.status.state, Some(State::Completed));
    assert_eq!(
        done.status.path.as_deref(),
        Some("file:/fp/checkpoints/j/chk-4")
    );
    assert!(
        done.events
            .iter()
            .any(|e| e.reason == EventReason::CheckpointCreated)
    );
}

#[test]
fn an_existing_savepoint_is_registered_when_it_is_on_storage_and_fails_when_it_is_not() {
    let mut s = savepoint();
    s.spec.job_reference = None;
    let sp = s.spec.savepoint.as_mut().unwrap();
    sp.already_exists = Some(true);
    sp.path = Some("file:///fp/savepoints/savepoint-1".into());
    let there = SnapshotObserved {
        exists: Some(true),
        ..Default::default()
    };
    let registered = decide(&s, None, &there);
    assert_eq!(registered.status.state, Some(State::Completed));
    assert_eq!(
        registered.status.path.as_deref(),
        Some("file:///fp/savepoints/savepoint-1")
    );
    assert!(registered.actions.is_empty());

    s.spec.backoff_limit = Some(0);
    let missing = decide(
        &s,
        None,
        &SnapshotObserved {
            exists: Some(false),
            ..Default::default()
        },
    );
    assert_eq!(missing.status.state, Some(State::Failed));
    assert!(
        missing
            .status
            .error
            .unwrap()
            .contains("spec.savepoint.path")
    );
}

#[test]
fn an_invalid_snapshot_triggers_nothing_and_says_why() {
    let d = deployment(FlinkJobState::Running);
    let mut s = savepoint();
    s.spec.checkpoint = Some(api::CheckpointSpec {});
    let decision = decide(&s, Some(&d), &SnapshotObserved::default());
    assert!(decision.actions.is_empty());
    assert!(decision.status.error.unwrap().starts_with(decide::INVALID));
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.reason == EventReason::ValidationError)
    );
}

#[test]
fn deleting_a_completed_savepoint_disposes_its_files_first_then_lets_it_go() {
    let d = deployment(FlinkJobState::Running);
    let s = deleting(completed_at("file:/fp/savepoints/savepoint-1"));
    let observed = SnapshotObserved {
        exists: Some(true),
        cluster_running: true,
        trigger: None,
    };
    let decision = decide(&s, Some(&d), &observed);
    assert_eq!(
        decision.actions,
        vec![
            SnapshotAction::Dispose {
                path: "file:/fp/savepoints/savepoint-1".into(),
                via_flink: true,
            },
            SnapshotAction::FinishDeletion,
        ],
        "the finalizer goes only after the files (act stops at a failed disposal)"
    );
    // without a cluster, directly on storage
    let stopped = SnapshotObserved {
        cluster_running: false,
        ..observed
    };
    assert_eq!(
        decide(&s, Some(&d), &stopped).actions[0],
        SnapshotAction::Dispose {
            path: "file:/fp/savepoints/savepoint-1".into(),
            via_flink: false,
        }
    );
    // a failed disposal keeps the resource and says why
    let (status, events, requeue) = apply_snapshot_outcome(
        &decision.status,
        &s,
        &decision.actions[0],
        &Outcome::Failed {
            message: "permission denied".into(),
            transient: true,
        },
        &settings(),
        NOW,
    );
    assert!(status.error.unwrap().starts_with(act::DISPOSE_FAILED));
    assert_eq!(requeue, Some(settings().retry_interval));
    assert!(
        events
            .iter()
            .any(|e| e.reason == EventReason::CleanupFailed)
    );
}

#[test]
fn the_savepoint_a_deployment_restores_from_is_never_disposed() {
    let mut d = deployment(FlinkJobState::Running);
    d.status
        .as_mut()
        .and_then(|s| s.job_status.as_mut())
        .unwrap()
        .upgrade_savepoint_path = Some("file:/fp/savepoints/savepoint-1".into());
    let s = deleting(completed_at("file:///fp/savepoints/savepoint-1/"));
    let decision = decide(
        &s,
        Some(&d),
        &SnapshotObserved {
            exists: Some(true),
            cluster_running: true,
            trigger: None,
        },
    );
    assert_eq!(decision.actions, vec![SnapshotAction::FinishDeletion]);
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.message.contains("restores from"))
    );
}

#[test]
fn deleting_without_dispose_on_delete_keeps_the_files() {
    let mut s = completed_at("file:/fp/savepoints/savepoint-1");
    s.spec.savepoint.as_mut().unwrap().dispose_on_delete = Some(false);
    let decision = decide(
        &deleting(s),
        Some(&deployment(FlinkJobState::Running)),
        &SnapshotObserved::default(),
    );
    assert_eq!(decision.actions, vec![SnapshotAction::FinishDeletion]);
}

#[test]
fn generated_snapshots_are_named_and_labelled_like_the_apache_operators() {
    let d = deployment(FlinkJobState::Running);
    let g = Generated {
        kind: SnapshotKind::Savepoint,
        trigger: api::SnapshotTriggerType::Periodic,
        at_ms: NOW,
        path: Some("file:///fp/savepoints".into()),
        format: api::SavepointFormatType::Canonical,
        dispose_on_delete: true,
    };
    let s = g.resource(&d);
    assert_eq!(
        s.metadata.name.as_deref(),
        Some("counter-savepoint-periodic-1800000000000")
    );
    assert_eq!(trigger_type(&s), api::SnapshotTriggerType::Periodic);
    assert_eq!(created_ms(&s), NOW);
    assert!(refers_to(
        &s,
        &crate::backend::ResourceKey::new("default", "counter")
    ));
    assert!(!s.spec.savepoint.as_ref().unwrap().already_exists());
    assert_eq!(
        s.spec.backoff_limit,
        Some(GENERATED_BACKOFF_LIMIT),
        "a failing periodic savepoint ends, so the schedule goes on"
    );
    assert!(api::validate::snapshot(&s).is_empty());
}

/// The session cluster `session` as the snapshot controller presents a session job's target: the
/// cluster's spec with the session job's `jobStatus`.
fn session_job_target(state: FlinkJobState) -> FlinkDeployment {
    let mut d = FlinkDeployment::test("session")
        .with_state_dirs("file:///fp")
        .deployed();
    d.status.get_or_insert_with(Default::default).job_status = Some(JobStatus {
        job_id: Some(JOB.into()),
        state: Some(state),
        ..Default::default()
    });
    d
}

#[test]
fn a_session_job_snapshot_is_taken_of_its_job_in_its_session_cluster() {
    let s = FlinkStateSnapshot::test_savepoint("sp", JobKind::FlinkSessionJob, "counter");
    let d = session_job_target(FlinkJobState::Running);
    let decision = decide_snapshot(SnapshotInput {
        snapshot: &s,
        target: Some(&d),
        observed: &SnapshotObserved::default(),
        settings: &settings(),
        now_ms: NOW,
        fresh_trigger_id: TRIGGER,
        session_jobs: true,
    });
    match decision.actions.as_slice() {
        [SnapshotAction::TriggerSavepoint(call)] => {
            assert_eq!(call.job_id, JOB);
            assert_eq!(call.target_dir.as_deref(), Some("file:///fp/savepoints"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(decision.labels[LABEL_JOB_REFERENCE_KIND], "FlinkSessionJob");
}

#[test]
fn a_session_job_snapshot_is_refused_where_the_store_keeps_no_session_jobs() {
    let s = FlinkStateSnapshot::test_savepoint("sp", JobKind::FlinkSessionJob, "counter");
    let decision = decide(&s, None, &SnapshotObserved::default());
    assert!(decision.actions.is_empty());
    let error = decision.status.error.unwrap_or_default();
    assert!(
        error.contains("spec.jobReference.kind") && error.contains("not supported"),
        "{error}"
    );
}
