//! Snapshots a running deployment takes on its own: periodic (duration and cron), manual through
//! the deprecated nonces, as `FlinkStateSnapshot` resources or in the legacy status, and their
//! retention.

use api::{
    FlinkJobState, FlinkStateSnapshot, FlinkStateSnapshotState, FlinkStateSnapshotStatus, JobKind,
    Savepoint, SnapshotTriggerType, UpgradeMode,
};

use super::*;
use crate::action::{Action, Outcome};
use crate::decide::snapshots::retention::to_delete;
use crate::snapshot::{self, SnapshotKind};

const PERIODIC: &str = "kubernetes.operator.periodic.savepoint.interval";

fn running() -> Observation {
    running_cluster(job(OLD_JOB, FlinkJobState::Running))
}

fn decide_at(d: &FlinkDeployment, obs: &Observation, now_ms: i64) -> Decision {
    decide(DecideInput {
        resource: d,
        observation: obs,
        settings: &settings(),
        now_ms,
        fresh: &fresh(),
    })
}

/// A running deployment whose last periodic savepoint was taken at `last_ms`.
fn periodic(schedule: &str, last_ms: i64) -> FlinkDeployment {
    let mut d = deployed(app(UpgradeMode::Savepoint).with_config(PERIODIC, schedule));
    d.status
        .as_mut()
        .and_then(|s| s.job_status.as_mut())
        .unwrap()
        .savepoint_info
        .get_or_insert_with(Default::default)
        .last_periodic_savepoint_timestamp = Some(last_ms);
    d
}

fn created(decision: &Decision) -> Vec<FlinkStateSnapshot> {
    decision
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateSnapshotResource(s) => Some((**s).clone()),
            _ => None,
        })
        .collect()
}

fn deleted(decision: &Decision) -> Vec<String> {
    decision
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteSnapshotResource { name } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// A snapshot resource of `counter` taken by `trigger` at `at_ms`, in `state`, at `path`.
fn resource(
    kind: SnapshotKind,
    trigger: SnapshotTriggerType,
    at_ms: i64,
    state: FlinkStateSnapshotState,
    path: &str,
) -> FlinkStateSnapshot {
    let name = snapshot::generated_name("counter", kind, trigger, at_ms);
    let mut s = match kind {
        SnapshotKind::Savepoint => {
            FlinkStateSnapshot::test_savepoint(&name, JobKind::FlinkDeployment, "counter")
        }
        SnapshotKind::Checkpoint => {
            FlinkStateSnapshot::test_checkpoint(&name, JobKind::FlinkDeployment, "counter")
        }
    };
    s.metadata.labels = Some(
        [(
            snapshot::LABEL_TRIGGER_TYPE.to_string(),
            trigger.as_str().to_string(),
        )]
        .into(),
    );
    s.status = Some(FlinkStateSnapshotStatus {
        state: Some(state),
        path: Some(path.to_string()),
        ..Default::default()
    });
    s
}

fn periodic_sp(at_ms: i64, state: FlinkStateSnapshotState) -> FlinkStateSnapshot {
    resource(
        SnapshotKind::Savepoint,
        SnapshotTriggerType::Periodic,
        at_ms,
        state,
        &format!("file:/fp/savepoints/savepoint-{at_ms}"),
    )
}

// ---- Periodic -------------------------------------------------------------------------------

#[test]
fn a_due_periodic_savepoint_becomes_a_snapshot_resource_recorded_first() {
    let d = periodic("2s", NOW - 5_000);
    let decision = run(&d, &running());
    let new = created(&decision);
    assert_eq!(new.len(), 1, "{:?}", decision.actions);
    let s = &new[0];
    assert_eq!(
        s.metadata.name.as_deref(),
        Some(format!("counter-savepoint-periodic-{NOW}").as_str())
    );
    assert_eq!(snapshot::trigger_type(s), SnapshotTriggerType::Periodic);
    assert_eq!(
        s.spec.savepoint.as_ref().and_then(|sp| sp.path.as_deref()),
        Some("file:///fp/savepoints")
    );
    assert_eq!(
        job_actions(&decision),
        vec![],
        "the job itself is not touched"
    );
    // write-ahead: the status names the resource before it is created …
    let info = decision
        .status
        .job_status
        .as_ref()
        .and_then(|j| j.savepoint_info.clone())
        .unwrap();
    assert_eq!(info.last_periodic_savepoint_timestamp, Some(NOW));
    assert_eq!(info.trigger_type, Some(SnapshotTriggerType::Periodic));
    assert_eq!(info.trigger_timestamp, Some(NOW));
    assert_eq!(info.trigger_id, None);

    // … a crash before creating it creates it on the next pass …
    let d = persisted(&d, &decision);
    let again = decide_at(&d, &running(), NOW + 500);
    assert_eq!(
        created(&again),
        new,
        "the same resource again, not a second one"
    );

    // … and once it exists the record is cleared and nothing else is taken
    let mut obs = running();
    obs.snapshots.resources = vec![new[0].clone()];
    let settled = decide_at(&d, &obs, NOW + 600);
    assert!(created(&settled).is_empty());
    let info = settled
        .status
        .job_status
        .and_then(|j| j.savepoint_info)
        .unwrap();
    assert_eq!(info.trigger_type, None);
    assert_eq!(info.trigger_timestamp, None);
}

#[test]
fn a_periodic_savepoint_that_is_not_due_waits_for_its_time() {
    let d = periodic("10s", NOW - 4_000);
    let decision = run(&d, &running());
    assert!(created(&decision).is_empty());
    assert!(decision.requeue_after <= Duration::from_secs(6));
}

#[test]
fn a_slow_periodic_savepoint_does_not_pile_up_behind_a_short_interval() {
    let d = periodic("1s", NOW - 5_000);
    let mut obs = running();
    obs.snapshots.resources = vec![periodic_sp(
        NOW - 4_000,
        FlinkStateSnapshotState::InProgress,
    )];
    assert!(created(&run(&d, &obs)).is_empty());
}

#[test]
fn no_periodic_savepoint_while_the_job_does_not_run() {
    let d = periodic("2s", NOW - 5_000);
    let decision = run(
        &d,
        &running_cluster(job(OLD_JOB, FlinkJobState::Restarting)),
    );
    assert!(created(&decision).is_empty());
}

#[test]
fn a_cron_schedule_takes_the_daily_savepoint_at_its_hour_in_utc() {
    // daily at 03:00 UTC; the last one yesterday at 03:00
    let d = periodic("0 0 3 * * ?", ms("2027-03-09T03:00:00Z"));
    let before = decide_at(&d, &running(), ms("2027-03-10T02:59:00Z"));
    assert!(created(&before).is_empty());
    assert!(
        before.requeue_after <= Duration::from_secs(60),
        "wakes up by 03:00: {:?}",
        before.requeue_after
    );
    let at = decide_at(&d, &running(), ms("2027-03-10T03:00:01Z"));
    assert_eq!(created(&at).len(), 1);
    assert_eq!(
        snapshot::trigger_type(&created(&at)[0]),
        SnapshotTriggerType::Periodic
    );
}

#[test]
fn without_snapshot_resources_a_periodic_savepoint_is_triggered_through_the_legacy_status() {
    let d = periodic("2s", NOW - 5_000)
        .with_config("kubernetes.operator.snapshot.resource.enabled", "false");
    let d = deployed(d);
    let mut d = d;
    d.status
        .as_mut()
        .and_then(|s| s.job_status.as_mut())
        .unwrap()
        .savepoint_info
        .get_or_insert_with(Default::default)
        .last_periodic_savepoint_timestamp = Some(NOW - 5_000);
    let decision = run(&d, &running());
    assert!(created(&decision).is_empty());
    match decision.actions.as_slice() {
        [Action::TriggerSavepoint(call)] => assert_eq!(call.trigger_id, TRIGGER),
        other => panic!("{other:?}"),
    }
    let info = decision
        .status
        .job_status
        .and_then(|j| j.savepoint_info)
        .unwrap();
    assert_eq!(info.trigger_id.as_deref(), Some(TRIGGER), "recorded first");
    assert_eq!(info.trigger_type, Some(SnapshotTriggerType::Periodic));
}

// ---- Manual (deprecated nonces) ---------------------------------------------------------

#[test]
fn a_new_savepoint_nonce_creates_one_manual_savepoint_resource() {
    let d = deployed(app(UpgradeMode::Savepoint));
    let mut d = d;
    d.spec.job.as_mut().unwrap().savepoint_trigger_nonce = Some(3);
    let decision = run(&d, &running());
    let new = created(&decision);
    assert_eq!(new.len(), 1, "{:?}", decision.actions);
    assert_eq!(snapshot::trigger_type(&new[0]), SnapshotTriggerType::Manual);
    assert_eq!(SnapshotKind::of(&new[0]), SnapshotKind::Savepoint);
    assert_eq!(
        target_spec(&decision.status)
            .and_then(|t| t.job)
            .and_then(|j| j.savepoint_trigger_nonce),
        Some(3),
        "the nonce is recorded as handled"
    );
    assert_eq!(job_actions(&decision), vec![]);

    // the next pass, with the resource there, takes nothing more
    let d = persisted(&d, &decision);
    let mut obs = running();
    obs.snapshots.resources = new;
    assert!(created(&decide_at(&d, &obs, NOW + 1000)).is_empty());
}

#[test]
fn a_new_checkpoint_nonce_creates_one_manual_checkpoint_resource() {
    let mut d = deployed(app(UpgradeMode::Savepoint));
    d.spec.job.as_mut().unwrap().checkpoint_trigger_nonce = Some(1);
    let decision = run(&d, &running());
    let new = created(&decision);
    assert_eq!(new.len(), 1, "{:?}", decision.actions);
    assert_eq!(SnapshotKind::of(&new[0]), SnapshotKind::Checkpoint);
    assert_eq!(snapshot::trigger_type(&new[0]), SnapshotTriggerType::Manual);

    let d = persisted(&d, &decision);
    let mut obs = running();
    obs.snapshots.resources = new;
    assert!(created(&decide_at(&d, &obs, NOW + 1000)).is_empty());
}

#[test]
fn without_snapshot_resources_a_checkpoint_nonce_triggers_a_checkpoint_recorded_first() {
    let mut d = deployed(
        app(UpgradeMode::Savepoint)
            .with_config("kubernetes.operator.snapshot.resource.enabled", "false"),
    );
    d.spec.job.as_mut().unwrap().checkpoint_trigger_nonce = Some(1);
    let decision = run(&d, &running());
    assert_eq!(
        decision.actions,
        vec![Action::TriggerCheckpoint {
            job_id: OLD_JOB.into(),
            trigger_id: TRIGGER.into()
        }]
    );
    let info = decision
        .status
        .job_status
        .and_then(|j| j.checkpoint_info)
        .unwrap();
    assert_eq!(info.trigger_id.as_deref(), Some(TRIGGER));
    assert_eq!(info.trigger_type, Some(SnapshotTriggerType::Manual));
}

// ---- Retention ------------------------------------------------------------------------------

#[test]
fn retention_deletes_the_oldest_past_max_count_and_keeps_the_newest() {
    let all = vec![
        periodic_sp(NOW - 3_000, FlinkStateSnapshotState::Completed),
        periodic_sp(NOW - 2_000, FlinkStateSnapshotState::Completed),
        periodic_sp(NOW - 1_000, FlinkStateSnapshotState::Completed),
    ];
    let names = |v: Vec<&FlinkStateSnapshot>| -> Vec<i64> {
        v.iter().map(|s| snapshot::created_ms(s)).collect()
    };
    assert_eq!(
        names(to_delete(&all, SnapshotKind::Savepoint, 2, i64::MIN, &[])),
        vec![NOW - 3_000]
    );
    assert_eq!(
        names(to_delete(&all, SnapshotKind::Savepoint, 1, i64::MIN, &[])),
        vec![NOW - 3_000, NOW - 2_000]
    );
    // by age, but never the newest completed one
    assert_eq!(
        names(to_delete(&all, SnapshotKind::Savepoint, 10, NOW, &[])),
        vec![NOW - 3_000, NOW - 2_000]
    );
    // not checkpoints when asked about savepoints
    assert!(to_delete(&all, SnapshotKind::Checkpoint, 1, i64::MIN, &[]).is_empty());
}

#[test]
fn retention_never_deletes_a_restore_point_a_manual_snapshot_or_one_being_taken() {
    let restore = format!("file:/fp/savepoints/savepoint-{}", NOW - 4_000);
    let mut upgrade = periodic_sp(NOW - 4_000, FlinkStateSnapshotState::Completed);
    upgrade.metadata.labels = Some(
        [(
            snapshot::LABEL_TRIGGER_TYPE.to_string(),
            "UPGRADE".to_string(),
        )]
        .into(),
    );
    let manual = resource(
        SnapshotKind::Savepoint,
        SnapshotTriggerType::Manual,
        NOW - 3_500,
        FlinkStateSnapshotState::Completed,
        "file:/fp/savepoints/manual",
    );
    let all = vec![
        upgrade,
        manual,
        periodic_sp(NOW - 3_000, FlinkStateSnapshotState::Completed),
        periodic_sp(NOW - 2_000, FlinkStateSnapshotState::Completed),
        periodic_sp(NOW - 1_000, FlinkStateSnapshotState::InProgress),
    ];
    let gone: Vec<i64> = to_delete(
        &all,
        SnapshotKind::Savepoint,
        2,
        i64::MIN,
        std::slice::from_ref(&restore),
    )
    .iter()
    .map(|s| snapshot::created_ms(s))
    .collect();
    // the upgrade savepoint (restored from) and the newest completed periodic one stay; the
    // manual one is not retention's; the one in progress neither counts nor goes
    assert_eq!(gone, vec![NOW - 3_000]);
}

/// What the snapshot reconciler does with `s` once retention deleted it (completed at `path`).
fn after_retention_deleted(
    s: &FlinkStateSnapshot,
    d: &FlinkDeployment,
    path: &str,
) -> Vec<snapshot::SnapshotAction> {
    let mut s = s.clone();
    s.status = Some(FlinkStateSnapshotStatus {
        state: Some(FlinkStateSnapshotState::Completed),
        path: Some(path.to_string()),
        ..Default::default()
    });
    s.metadata.deletion_timestamp =
        serde_json::from_value(serde_json::json!("2027-01-01T00:00:00Z")).ok();
    snapshot::decide_snapshot(snapshot::SnapshotInput {
        snapshot: &s,
        target: Some(d),
        observed: &snapshot::SnapshotObserved {
            exists: Some(true),
            cluster_running: true,
            trigger: None,
        },
        settings: &settings(),
        now_ms: NOW,
        fresh_trigger_id: TRIGGER,
        session_jobs: false,
    })
    .actions
}

#[test]
fn generated_savepoints_dispose_their_files_when_retention_deletes_them_unless_turned_off() {
    let path = "file:/fp/savepoints/savepoint-periodic";
    let d = periodic("2s", NOW - 5_000);
    let new = created(&run(&d, &running()));
    let sp = new[0].spec.savepoint.clone().unwrap();
    assert_eq!(sp.dispose_on_delete, Some(true), "our default");
    assert_eq!(
        after_retention_deleted(&new[0], &d, path),
        vec![
            snapshot::SnapshotAction::Dispose {
                path: path.into(),
                via_flink: true
            },
            snapshot::SnapshotAction::FinishDeletion
        ]
    );

    // `kubernetes.operator.savepoint.dispose-on-delete: false` keeps the files, as in the
    // Apache operator
    let d = d.with_config("kubernetes.operator.savepoint.dispose-on-delete", "false");
    let new = created(&run(&d, &running()));
    let sp = new[0].spec.savepoint.clone().unwrap();
    assert_eq!(sp.dispose_on_delete, Some(false));
    assert_eq!(
        after_retention_deleted(&new[0], &d, path),
        vec![snapshot::SnapshotAction::FinishDeletion]
    );
}

#[test]
fn retention_deletes_resources_of_a_running_deployment_except_what_it_restores_from() {
    let restore = format!("file:/fp/savepoints/savepoint-{}", NOW - 4_000);
    let d = set_path(
        deployed(
            app(UpgradeMode::Savepoint)
                .with_config("kubernetes.operator.savepoint.history.max.count", "2"),
        ),
        Some(&restore),
    );
    let mut obs = running();
    obs.snapshots.resources = vec![
        periodic_sp(NOW - 4_000, FlinkStateSnapshotState::Completed),
        periodic_sp(NOW - 3_000, FlinkStateSnapshotState::Completed),
        periodic_sp(NOW - 2_000, FlinkStateSnapshotState::Completed),
    ];
    let decision = run(&d, &obs);
    assert_eq!(
        deleted(&decision),
        vec![format!("counter-savepoint-periodic-{}", NOW - 3_000)]
    );
    assert_eq!(job_actions(&decision).len(), 1, "only the deletion");
}

#[test]
fn legacy_history_entries_are_disposed_before_they_are_dropped() {
    let mut d = deployed(
        app(UpgradeMode::Savepoint)
            .with_config("kubernetes.operator.snapshot.resource.enabled", "false")
            .with_config("kubernetes.operator.savepoint.history.max.count", "2"),
    );
    let entry = |i: i64| Savepoint {
        time_stamp: Some(NOW - 10_000 + i),
        location: Some(format!("file:/fp/savepoints/savepoint-{i}")),
        trigger_type: Some(SnapshotTriggerType::Periodic),
        ..Default::default()
    };
    d.status
        .as_mut()
        .and_then(|s| s.job_status.as_mut())
        .unwrap()
        .savepoint_info
        .get_or_insert_with(Default::default)
        .savepoint_history = Some(vec![entry(1), entry(2), entry(3)]);
    let decision = run(&d, &running());
    let dispose = Action::DisposeSnapshot {
        path: "file:/fp/savepoints/savepoint-1".into(),
        via_flink: true,
    };
    assert_eq!(decision.actions, vec![dispose.clone()]);
    let history = |status: &api::FlinkDeploymentStatus| -> usize {
        status
            .job_status
            .as_ref()
            .and_then(|j| j.savepoint_info.as_ref())
            .and_then(|s| s.savepoint_history.as_ref())
            .map_or(0, Vec::len)
    };
    assert_eq!(history(&decision.status), 3, "kept until disposed");

    let failed = apply_outcome(
        &decision.status,
        &dispose,
        &Outcome::Failed {
            message: "no".into(),
            transient: true,
        },
        NOW,
    );
    assert_eq!(history(&failed.0), 3, "a failed disposal keeps the record");
    let done = apply_outcome(&decision.status, &dispose, &Outcome::Done, NOW);
    assert_eq!(history(&done.0), 2, "dropped once the files are gone");
}

#[test]
fn the_newest_completed_savepoint_resource_becomes_the_last_savepoint() {
    let d = deployed(app(UpgradeMode::Savepoint));
    let mut done = periodic_sp(NOW - 2_000, FlinkStateSnapshotState::Completed);
    done.status.as_mut().unwrap().result_timestamp = Some(snapshot::rfc3339(NOW - 1_500));
    let mut older = periodic_sp(NOW - 9_000, FlinkStateSnapshotState::Completed);
    older.status.as_mut().unwrap().result_timestamp = Some(snapshot::rfc3339(NOW - 8_500));
    let mut obs = running();
    obs.snapshots.resources = vec![older, done];
    let decision = run(&d, &obs);
    let last = decision
        .status
        .job_status
        .as_ref()
        .and_then(|j| j.savepoint_info.as_ref())
        .and_then(|s| s.last_savepoint.clone())
        .expect("recorded");
    assert_eq!(
        last.location.as_deref(),
        Some(format!("file:/fp/savepoints/savepoint-{}", NOW - 2_000).as_str())
    );
    assert_eq!(last.time_stamp, Some(NOW - 1_500));
    assert_eq!(last.trigger_type, Some(SnapshotTriggerType::Periodic));
    // nothing changes on the next pass
    let d = persisted(&d, &decision);
    assert_eq!(run(&d, &obs).status, decision.status);
}

#[test]
fn a_failed_snapshot_resource_shows_in_the_deployments_status_until_a_newer_one_completes() {
    let d = deployed(app(UpgradeMode::Savepoint));
    let mut failed = periodic_sp(NOW - 2_000, FlinkStateSnapshotState::Failed);
    failed.status.as_mut().unwrap().error = Some("Mkdirs failed".into());
    let mut obs = running();
    obs.snapshots.resources = vec![
        periodic_sp(NOW - 9_000, FlinkStateSnapshotState::Completed),
        failed,
    ];
    let decision = run(&d, &obs);
    let error = decision.status.error.clone().expect("reported");
    assert!(error.starts_with("Savepoint failed: "), "{error}");
    assert!(error.contains("Mkdirs failed"), "{error}");
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.reason == crate::EventReason::SavepointError)
    );
    assert_eq!(job_actions(&decision), vec![], "the job is left alone");

    // the same failure again: no second event
    let d = persisted(&d, &decision);
    assert!(run(&d, &obs).events.is_empty());

    // a newer completed savepoint clears it
    obs.snapshots
        .resources
        .push(periodic_sp(NOW - 1_000, FlinkStateSnapshotState::Completed));
    assert_eq!(run(&d, &obs).status.error, None);
}

#[test]
fn a_failed_snapshot_never_hides_an_invalid_spec() {
    let mut d = deployed(app(UpgradeMode::Savepoint));
    d.status.as_mut().unwrap().error = Some(format!("{INVALID_SPEC}spec.job.parallelism: …"));
    d.spec.job.as_mut().unwrap().parallelism = Some(-1);
    let mut failed = periodic_sp(NOW - 2_000, FlinkStateSnapshotState::Failed);
    failed.status.as_mut().unwrap().error = Some("Mkdirs failed".into());
    let mut obs = running();
    obs.snapshots.resources = vec![failed];
    let error = run(&d, &obs).status.error.unwrap_or_default();
    assert!(error.starts_with(INVALID_SPEC), "{error}");
}
