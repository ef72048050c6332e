//! `decide_session_job`, one transition per test: a session job is driven through its phases by
//! feeding each decision's status back in with what Flink would report.

use api::reconciled::ReconciliationMetadata;
use api::{
    FlinkDeployment, FlinkJobState, FlinkSessionJob, JobManagerDeploymentStatus, JobSpec, JobState,
    ReconciliationState, ResourceLifecycleState, UpgradeMode,
};

use super::decide::{BLOCKED, INVALID, WAITING};
use super::*;
use crate::action::EventReason;
use crate::observation::{
    CheckpointRef, ClusterObservation, JobInfo, JobObservation, Observation, TriggerObservation,
    TriggerState,
};
use crate::settings::Settings;

mod recover;

const JAR: &str = "local:///opt/flink/usrlib/counter.jar";
const TRIGGER: &str = "0123456789abcdef0123456789abcdef";
const SAVEPOINT: &str = "file:/data/savepoints/savepoint-1";

fn settings() -> Settings {
    Settings {
        paths: crate::PathMap::new().with("/opt/flink/usrlib", "/state/usrlib"),
        ..Settings::default()
    }
}

fn session(ready: bool) -> FlinkDeployment {
    let mut d = FlinkDeployment::test("session").with_state_dirs("file:///data");
    let status = d.status.get_or_insert_with(Default::default);
    status.job_manager_deployment_status = Some(if ready {
        JobManagerDeploymentStatus::Ready
    } else {
        JobManagerDeploymentStatus::Deploying
    });
    d
}

fn job(mode: UpgradeMode) -> FlinkSessionJob {
    let mut j = FlinkSessionJob::test("counter", "session").with_job(JobSpec {
        args: Some(vec!["--rate".into(), "10".into()]),
        ..JobSpec::test(JAR)
    });
    j.metadata.uid = Some("uid-1".into());
    j.with_upgrade_mode(mode)
}

fn running_cluster() -> ClusterObservation {
    ClusterObservation::Running {
        plan_hash: None,
        taskmanagers: 1,
    }
}

fn obs(job: JobObservation) -> Observation {
    Observation {
        cluster: running_cluster(),
        job,
        trigger: None,
        latest_checkpoint: None,
        failure_cause: None,
        snapshots: Default::default(),
        progress: Default::default(),
    }
}

fn found(id: &str, state: FlinkJobState) -> JobObservation {
    JobObservation::Found(JobInfo {
        id: id.into(),
        name: "counter".into(),
        state,
        start_time_ms: 5,
        update_time_ms: 6,
        all_tasks_running: Some(true),
    })
}

fn decide(j: &FlinkSessionJob, d: Option<&FlinkDeployment>, o: &Observation) -> SessionJobDecision {
    decide_session_job(SessionJobInput {
        job: j,
        deployment: d,
        observation: o,
        settings: &settings(),
        now_ms: 1_000,
        fresh_trigger_id: TRIGGER,
    })
}

/// `j` with the decision's status, as the store holds it after `act`.
fn after(mut j: FlinkSessionJob, decision: &SessionJobDecision) -> FlinkSessionJob {
    j.status = Some(decision.status.clone());
    j
}

fn job_id(j: &FlinkSessionJob) -> String {
    j.status
        .as_ref()
        .and_then(|s| s.job_status.as_ref())
        .and_then(|s| s.job_id.clone())
        .unwrap_or_default()
}

fn recon_state(d: &SessionJobDecision) -> Option<ReconciliationState> {
    d.status
        .reconciliation_status
        .as_ref()
        .and_then(|r| r.state)
}

fn restore(d: &SessionJobDecision) -> Option<String> {
    d.status
        .job_status
        .as_ref()
        .and_then(|j| j.upgrade_savepoint_path.clone())
}

/// A new job submitted and found RUNNING: DEPLOYED and stable.
fn running_job(mode: UpgradeMode) -> FlinkSessionJob {
    running(job(mode))
}

/// `j` (new) submitted and found RUNNING: DEPLOYED and stable.
fn running(j: FlinkSessionJob) -> FlinkSessionJob {
    let d = session(true);
    let submitted = after(
        j.clone(),
        &decide(&j, Some(&d), &obs(JobObservation::NotFound)),
    );
    let id = job_id(&submitted);
    let deployed = after(
        submitted.clone(),
        &decide(
            &submitted,
            Some(&d),
            &obs(found(&id, FlinkJobState::Running)),
        ),
    );
    let stable = decide(
        &deployed,
        Some(&d),
        &obs(found(&id, FlinkJobState::Running)),
    );
    after(deployed, &stable)
}

/// `j` with a new spec (generation + 1).
fn changed(mut j: FlinkSessionJob, change: impl FnOnce(&mut JobSpec)) -> FlinkSessionJob {
    if let Some(spec) = j.spec.job.as_mut() {
        change(spec);
    }
    j.metadata.generation = Some(j.metadata.generation.unwrap_or(1) + 1);
    j
}

fn submit_plan(d: &SessionJobDecision) -> &SubmitPlan {
    match d.actions.as_slice() {
        [SessionJobAction::Submit(plan)] => plan,
        other => panic!("expected one Submit, got {other:?}"),
    }
}

#[test]
fn credentials_in_a_jar_uri_never_reach_a_message() {
    assert_eq!(
        without_credentials("https://user:secret@example.com/a@b.jar"),
        "https://***@example.com/a@b.jar"
    );
    assert_eq!(
        without_credentials("local:///opt/flink/usrlib/x.jar"),
        "local:///opt/flink/usrlib/x.jar"
    );
    let err = decide::jar_path("ftp://user:secret@example.com/x.jar", &settings())
        .expect_err("an ftp jar is refused");
    assert!(!err.contains("secret"), "{err}");
}

#[test]
fn job_ids_are_derived_from_uid_and_generation() {
    let a = job_id_for("uid-1", 1);
    assert_eq!(a.len(), 32);
    assert!(a.parse::<flink::JobId>().is_ok(), "{a}");
    assert_eq!(
        a,
        job_id_for("uid-1", 1),
        "the same inputs give the same id"
    );
    assert_ne!(a, job_id_for("uid-1", 2));
    assert_ne!(a, job_id_for("uid-2", 1));
}

#[test]
fn a_missing_session_cluster_is_waited_for_with_a_message_and_nothing_is_submitted() {
    let d = decide(
        &job(UpgradeMode::Stateless),
        None,
        &obs(JobObservation::NotFound),
    );
    assert!(d.actions.is_empty());
    let error = d.status.error.clone().unwrap_or_default();
    assert!(
        error.starts_with(WAITING) && error.contains("does not exist"),
        "{error}"
    );
    assert_eq!(d.status.reconciliation_status, None, "nothing recorded");
}

#[test]
fn a_session_cluster_that_is_not_ready_is_waited_for() {
    let d = decide(
        &job(UpgradeMode::Stateless),
        Some(&session(false)),
        &obs(JobObservation::NotFound),
    );
    assert!(d.actions.is_empty());
    let error = d.status.error.clone().unwrap_or_default();
    assert!(
        error.contains("not ready") && error.contains("DEPLOYING"),
        "{error}"
    );
    assert_eq!(
        d.status.lifecycle_state,
        Some(ResourceLifecycleState::Created),
        "waiting is not a failure"
    );
}

#[test]
fn an_application_deployment_or_a_jar_that_cannot_be_fetched_is_an_invalid_spec() {
    let app = FlinkDeployment::test("session").application();
    let d = decide(
        &job(UpgradeMode::Stateless),
        Some(&app),
        &obs(JobObservation::NotFound),
    );
    assert!(d.actions.is_empty());
    let error = d.status.error.unwrap_or_default();
    assert!(
        error.starts_with(INVALID) && error.contains("spec.deploymentName"),
        "{error}"
    );
    assert_eq!(
        d.status.lifecycle_state,
        Some(ResourceLifecycleState::Failed)
    );

    let mut remote = job(UpgradeMode::Stateless);
    if let Some(j) = remote.spec.job.as_mut() {
        j.jar_uri = Some("s3://bucket/a.jar".into());
    }
    let d = decide(
        &remote,
        Some(&session(true)),
        &obs(JobObservation::NotFound),
    );
    assert!(d.actions.is_empty());
    assert!(
        d.status
            .error
            .unwrap_or_default()
            .contains("spec.job.jarURI")
    );
}

#[test]
fn the_job_id_and_target_are_recorded_before_the_jar_is_submitted() {
    let mut j = job(UpgradeMode::Savepoint);
    if let Some(s) = j.spec.job.as_mut() {
        s.initial_savepoint_path = Some(SAVEPOINT.into());
    }
    let d = decide(&j, Some(&session(true)), &obs(JobObservation::NotFound));
    let plan = submit_plan(&d);
    assert_eq!(plan.job_id, job_id_for("uid-1", 1));
    assert_eq!(job_id(&after(j.clone(), &d)), plan.job_id, "recorded first");
    assert_eq!(plan.jar_path, "/state/usrlib/counter.jar");
    let mut remote = j.clone();
    if let Some(s) = remote.spec.job.as_mut() {
        s.jar_uri = Some("https://example.com/jobs/counter.jar".into());
    }
    let d = decide(
        &remote,
        Some(&session(true)),
        &obs(JobObservation::NotFound),
    );
    assert_eq!(
        submit_plan(&d).jar_path,
        "https://example.com/jobs/counter.jar",
        "an http(s) jar is downloaded by act"
    );
    assert_eq!(plan.restore_path.as_deref(), Some(SAVEPOINT));
    assert_eq!(plan.args, ["--rate", "10"]);
    assert_eq!(recon_state(&d), Some(ReconciliationState::Upgrading));
    assert_eq!(
        d.status.lifecycle_state,
        Some(ResourceLifecycleState::Upgrading)
    );
}

#[test]
fn a_submission_not_found_is_repeated_under_the_same_id_and_a_found_job_is_deployed() {
    let d = session(true);
    let j = job(UpgradeMode::Stateless);
    let submitted = after(
        j.clone(),
        &decide(&j, Some(&d), &obs(JobObservation::NotFound)),
    );
    let id = job_id(&submitted);
    // a crash after the record: the job is not there, submitted again under the same id
    let again = decide(&submitted, Some(&d), &obs(JobObservation::NotFound));
    assert_eq!(submit_plan(&again).job_id, id);
    // found: deployed, then stable while RUNNING
    let deployed = decide(
        &submitted,
        Some(&d),
        &obs(found(&id, FlinkJobState::Running)),
    );
    assert!(deployed.actions.is_empty());
    assert_eq!(recon_state(&deployed), Some(ReconciliationState::Deployed));
    let stable = decide(
        &after(submitted, &deployed),
        Some(&d),
        &obs(found(&id, FlinkJobState::Running)),
    );
    assert_eq!(
        stable.status.lifecycle_state,
        Some(ResourceLifecycleState::Stable)
    );
}

#[test]
fn a_savepoint_upgrade_records_the_trigger_stops_the_job_and_resubmits_from_the_savepoint() {
    let d = session(true);
    let j = running_job(UpgradeMode::Savepoint);
    let old = job_id(&j);
    let j = changed(j, |s| s.args = Some(vec!["--rate".into(), "20".into()]));
    let stop = decide(&j, Some(&d), &obs(found(&old, FlinkJobState::Running)));
    match stop.actions.as_slice() {
        [SessionJobAction::StopWithSavepoint(call)] => {
            assert_eq!(call.job_id, old);
            assert_eq!(call.trigger_id, TRIGGER);
        }
        other => panic!("expected a stop with savepoint, got {other:?}"),
    }
    let info = stop
        .status
        .job_status
        .clone()
        .unwrap_or_default()
        .savepoint_info
        .unwrap_or_default();
    assert_eq!(
        info.trigger_id.as_deref(),
        Some(TRIGGER),
        "trigger recorded first"
    );
    assert_eq!(recon_state(&stop), Some(ReconciliationState::Upgrading));

    let j = after(j, &stop);
    let mut o = obs(found(&old, FlinkJobState::Finished));
    o.trigger = Some(TriggerObservation {
        trigger_id: TRIGGER.into(),
        state: TriggerState::Completed {
            location: Some(SAVEPOINT.into()),
        },
    });
    let resubmit = decide(&j, Some(&d), &o);
    let plan = submit_plan(&resubmit);
    assert_eq!(plan.restore_path.as_deref(), Some(SAVEPOINT));
    assert_eq!(plan.args, ["--rate", "20"]);
    assert_ne!(plan.job_id, old, "a new job id for the new generation");
    assert_eq!(restore(&resubmit).as_deref(), Some(SAVEPOINT));
    assert!(
        resubmit
            .events
            .iter()
            .any(|e| e.reason == EventReason::SavepointCreated)
    );
}

#[test]
fn a_last_state_upgrade_records_the_checkpoint_before_cancelling_and_restores_from_it() {
    let d = session(true);
    let j = running_job(UpgradeMode::LastState);
    let old = job_id(&j);
    let j = changed(j, |s| s.parallelism = Some(2));
    let chk = |id: u64| CheckpointRef {
        id,
        path: format!("file:/data/chk/{old}/chk-{id}"),
        timestamp_ms: 1,
        on_storage: Some(true),
    };
    let mut o = obs(found(&old, FlinkJobState::Running));
    o.latest_checkpoint = Some(chk(3));
    let cancel = decide(&j, Some(&d), &o);
    assert_eq!(
        cancel.actions,
        [SessionJobAction::CancelJob {
            job_id: old.clone()
        }]
    );
    assert_eq!(
        restore(&cancel),
        Some(chk(3).path),
        "recorded before the cancel"
    );

    // a newer checkpoint completed while cancelling replaces the recorded one
    let j = after(j, &cancel);
    let mut o = obs(found(&old, FlinkJobState::Canceled));
    o.latest_checkpoint = Some(chk(4));
    let resubmit = decide(&j, Some(&d), &o);
    assert_eq!(submit_plan(&resubmit).restore_path, Some(chk(4).path));
    assert_eq!(
        submit_plan(&resubmit)
            .config
            .get(crate::plan_builder::RETENTION_KEY)
            .map(String::as_str),
        Some(crate::plan_builder::RETAIN_ON_CANCELLATION)
    );
}

#[test]
fn a_last_state_upgrade_without_a_checkpoint_is_blocked_and_the_job_untouched() {
    let d = session(true);
    let j = running_job(UpgradeMode::LastState);
    let old = job_id(&j);
    let j = changed(j, |s| s.parallelism = Some(2));
    let blocked = decide(&j, Some(&d), &obs(found(&old, FlinkJobState::Running)));
    assert!(blocked.actions.is_empty());
    assert!(
        blocked
            .status
            .error
            .unwrap_or_default()
            .starts_with(BLOCKED)
    );
}

#[test]
fn a_stateless_upgrade_cancels_and_resubmits_without_state() {
    let d = session(true);
    let j = running_job(UpgradeMode::Stateless);
    let old = job_id(&j);
    let j = changed(j, |s| s.parallelism = Some(2));
    let cancel = decide(&j, Some(&d), &obs(found(&old, FlinkJobState::Running)));
    assert_eq!(
        cancel.actions,
        [SessionJobAction::CancelJob {
            job_id: old.clone()
        }]
    );
    let j = after(j, &cancel);
    let resubmit = decide(&j, Some(&d), &obs(found(&old, FlinkJobState::Canceled)));
    assert_eq!(submit_plan(&resubmit).restore_path, None);
    assert_eq!(submit_plan(&resubmit).parallelism, Some(2));
}

#[test]
fn suspend_stops_with_a_savepoint_and_resume_submits_from_it() {
    let d = session(true);
    let j = running_job(UpgradeMode::Savepoint);
    let old = job_id(&j);
    let j = changed(j, |s| s.state = Some(JobState::Suspended));
    let stop = decide(&j, Some(&d), &obs(found(&old, FlinkJobState::Running)));
    assert!(matches!(
        stop.actions.as_slice(),
        [SessionJobAction::StopWithSavepoint(_)]
    ));
    let j = after(j, &stop);
    let mut o = obs(found(&old, FlinkJobState::Finished));
    o.trigger = Some(TriggerObservation {
        trigger_id: TRIGGER.into(),
        state: TriggerState::Completed {
            location: Some(SAVEPOINT.into()),
        },
    });
    let suspended = decide(&j, Some(&d), &o);
    assert!(suspended.actions.is_empty());
    assert_eq!(
        suspended.status.lifecycle_state,
        Some(ResourceLifecycleState::Suspended)
    );
    assert_eq!(recon_state(&suspended), Some(ReconciliationState::Deployed));

    let j = changed(after(j, &suspended), |s| s.state = Some(JobState::Running));
    let resumed = decide(&j, Some(&d), &obs(found(&old, FlinkJobState::Finished)));
    assert_eq!(
        submit_plan(&resumed).restore_path.as_deref(),
        Some(SAVEPOINT)
    );
}

#[test]
fn an_invalid_change_is_reported_and_the_running_job_untouched() {
    let d = session(true);
    let j = running_job(UpgradeMode::Savepoint);
    let old = job_id(&j);
    let target = j.status.clone().and_then(|s| s.reconciliation_status);
    let j = changed(j, |s| s.parallelism = Some(-3));
    let decision = decide(&j, Some(&d), &obs(found(&old, FlinkJobState::Running)));
    assert!(decision.actions.is_empty());
    let error = decision.status.error.clone().unwrap_or_default();
    assert!(
        error.starts_with(INVALID) && error.contains("spec.job.parallelism"),
        "{error}"
    );
    assert_eq!(
        decision.status.reconciliation_status, target,
        "nothing recorded"
    );
}

#[test]
fn deletion_cancels_the_job_then_finishes_and_savepoint_on_deletion_stops_it_first() {
    let d = session(true);
    let mut j = running_job(UpgradeMode::Savepoint);
    let id = job_id(&j);
    j.metadata.deletion_timestamp =
        serde_json::from_value(serde_json::json!("2027-01-01T00:00:00Z")).ok();
    assert!(j.metadata.deletion_timestamp.is_some());
    let cancel = decide(&j, Some(&d), &obs(found(&id, FlinkJobState::Running)));
    assert_eq!(
        cancel.actions,
        [SessionJobAction::CancelJob { job_id: id.clone() }]
    );
    assert_eq!(
        cancel.status.lifecycle_state,
        Some(ResourceLifecycleState::Deleting)
    );
    let done = decide(&j, Some(&d), &obs(found(&id, FlinkJobState::Canceled)));
    assert_eq!(done.actions, [SessionJobAction::FinishDeletion]);
    // the session cluster is gone: nothing left to stop
    let gone = decide(&j, None, &obs(JobObservation::NotFound));
    assert_eq!(gone.actions, [SessionJobAction::FinishDeletion]);

    let j = j.with_config("kubernetes.operator.job.savepoint-on-deletion", "true");
    let stop = decide(&j, Some(&d), &obs(found(&id, FlinkJobState::Running)));
    assert!(matches!(
        stop.actions.as_slice(),
        [SessionJobAction::StopWithSavepoint(_)]
    ));
}

#[test]
fn the_metadata_of_a_recorded_spec_is_kept() {
    // A target written by an earlier pass reads back with its generation.
    let j = running_job(UpgradeMode::Stateless);
    let recon = j
        .status
        .and_then(|s| s.reconciliation_status)
        .unwrap_or_default();
    let target = recon
        .last_reconciled::<api::FlinkSessionJobSpec>()
        .ok()
        .flatten();
    assert_eq!(
        target.and_then(|t| t.meta),
        Some(ReconciliationMetadata::new(Some(1), true))
    );
}
