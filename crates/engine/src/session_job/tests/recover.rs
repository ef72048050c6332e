//! Recovery of session jobs (`decide/recover.rs`): a FAILED job with `job.restart.failed`, and a
//! job its session cluster lost, resubmitted from the newest state — or blocked when there is
//! none.

use api::{Savepoint, SavepointInfo};

use super::*;
use crate::session_job::decide::{JOB_FAILED, JOB_MISSING, RECOVERY};

const RESTART_FAILED: &str = "kubernetes.operator.job.restart.failed";
const JM_RECOVERY: &str = "kubernetes.operator.jm-deployment-recovery.enabled";

fn chk(job: &str, id: u64, at: i64) -> CheckpointRef {
    CheckpointRef {
        id,
        path: format!("file:/data/checkpoints/{job}/chk-{id}"),
        timestamp_ms: at,
        on_storage: Some(true),
    }
}

/// The job FAILED with a cause; `checkpoint` is the newest the JobManager reports.
fn failed_obs(id: &str, checkpoint: Option<CheckpointRef>) -> Observation {
    let mut o = obs(found(id, FlinkJobState::Failed));
    o.failure_cause = Some("java.lang.RuntimeException: boom".into());
    o.latest_checkpoint = checkpoint;
    o.progress.checkpoint_lookup_complete = true;
    o
}

/// The session cluster runs (a new JobManager) and does not know the job; `checkpoint` is the
/// newest found on storage.
fn lost_obs(checkpoint: Option<CheckpointRef>) -> Observation {
    let mut o = obs(JobObservation::NotFound);
    o.latest_checkpoint = checkpoint;
    o.progress.checkpoint_lookup_complete = true;
    o
}

fn error(d: &SessionJobDecision) -> String {
    d.status.error.clone().unwrap_or_default()
}

fn event(d: &SessionJobDecision, reason: EventReason) -> String {
    d.events
        .iter()
        .find(|e| e.reason == reason)
        .map(|e| e.message.clone())
        .unwrap_or_else(|| panic!("no {reason} event in {:?}", d.events))
}

/// Nothing submitted, nothing recorded: the job stays as it was.
fn assert_blocked(before: &FlinkSessionJob, d: &SessionJobDecision) {
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    let error = error(d);
    assert!(error.starts_with(RECOVERY), "{error}");
    assert!(error.contains("nothing was submitted"), "{error}");
    let status = before.status.clone().unwrap_or_default();
    assert_eq!(d.status.reconciliation_status, status.reconciliation_status);
    assert_eq!(job_id(&after(before.clone(), d)), job_id(before));
}

#[test]
fn a_failed_job_is_resubmitted_from_its_newest_checkpoint_with_restart_failed() {
    let j = running(job(UpgradeMode::LastState).with_config(RESTART_FAILED, "true"));
    let old = job_id(&j);
    let d = decide(
        &j,
        Some(&session(true)),
        &failed_obs(&old, Some(chk(&old, 7, 900))),
    );
    let plan = submit_plan(&d);
    assert_eq!(plan.restore_path, Some(chk(&old, 7, 900).path));
    assert_ne!(plan.job_id, old, "Flink refuses an id it has seen");
    // written ahead: the new id, the restore path, UPGRADING
    assert_eq!(job_id(&after(j.clone(), &d)), plan.job_id);
    assert_eq!(restore(&d), Some(chk(&old, 7, 900).path));
    assert_eq!(recon_state(&d), Some(ReconciliationState::Upgrading));
    let message = event(&d, EventReason::RestartFailedJob);
    assert!(
        message.contains("boom")
            && message.contains("checkpoint 7")
            && message.contains(&plan.job_id),
        "{message}"
    );
    let error = error(&d);
    assert!(
        error.starts_with(JOB_FAILED) && error.contains("chk-7"),
        "{error}"
    );
}

#[test]
fn a_failed_job_stays_failed_with_its_cause_without_restart_failed() {
    let j = running_job(UpgradeMode::LastState);
    let old = job_id(&j);
    let d = decide(
        &j,
        Some(&session(true)),
        &failed_obs(&old, Some(chk(&old, 7, 900))),
    );
    assert!(d.actions.is_empty());
    assert_eq!(
        error(&d),
        format!("{JOB_FAILED}java.lang.RuntimeException: boom")
    );
    assert_eq!(
        d.status.lifecycle_state,
        Some(ResourceLifecycleState::Failed)
    );
}

#[test]
fn restart_failed_is_read_from_the_operator_defaults_and_the_job_config_wins() {
    let j = running_job(UpgradeMode::Stateless);
    let old = job_id(&j);
    let mut settings = settings();
    settings
        .default_config
        .insert(RESTART_FAILED.into(), "true".into());
    let decide_with = |j: &FlinkSessionJob| {
        decide_session_job(SessionJobInput {
            job: j,
            deployment: Some(&session(true)),
            observation: &failed_obs(&old, None),
            settings: &settings,
            now_ms: 1_000,
            fresh_trigger_id: TRIGGER,
        })
    };
    let d = decide_with(&j);
    assert_eq!(submit_plan(&d).restore_path, None, "stateless: empty");
    let off = j.with_config(RESTART_FAILED, "false");
    assert!(decide_with(&off).actions.is_empty());
}

#[test]
fn a_failed_savepoint_mode_job_restores_the_newer_of_its_checkpoint_and_savepoint() {
    let j = running(job(UpgradeMode::Savepoint).with_config(RESTART_FAILED, "true"));
    let old = job_id(&j);
    // a savepoint taken while the job ran (it started at 5), at 500
    let mut j = j;
    if let Some(js) = j.status.as_mut().and_then(|s| s.job_status.as_mut()) {
        js.savepoint_info = Some(SavepointInfo {
            last_savepoint: Some(Savepoint {
                time_stamp: Some(500),
                location: Some(SAVEPOINT.into()),
                ..Savepoint::default()
            }),
            ..SavepointInfo::default()
        });
    }
    let s = session(true);
    let older = decide(&j, Some(&s), &failed_obs(&old, Some(chk(&old, 3, 400))));
    assert_eq!(submit_plan(&older).restore_path.as_deref(), Some(SAVEPOINT));
    let newer = decide(&j, Some(&s), &failed_obs(&old, Some(chk(&old, 4, 600))));
    assert_eq!(
        submit_plan(&newer).restore_path,
        Some(chk(&old, 4, 600).path)
    );
}

#[test]
fn a_failed_stateful_job_without_any_state_is_blocked_and_nothing_is_submitted() {
    let j = running(job(UpgradeMode::LastState).with_config(RESTART_FAILED, "true"));
    let old = job_id(&j);
    let d = decide(&j, Some(&session(true)), &failed_obs(&old, None));
    assert_blocked(&j, &d);
    assert!(
        error(&d).contains("completed no checkpoint"),
        "{}",
        error(&d)
    );
}

#[test]
fn a_job_the_session_cluster_lost_is_resubmitted_from_its_newest_checkpoint_on_storage() {
    let j = running_job(UpgradeMode::LastState);
    let old = job_id(&j);
    let s = session(true);
    let d = decide(&j, Some(&s), &lost_obs(Some(chk(&old, 12, 900))));
    let plan = submit_plan(&d).clone();
    assert_eq!(plan.restore_path, Some(chk(&old, 12, 900).path));
    assert_ne!(plan.job_id, old);
    assert_eq!(recon_state(&d), Some(ReconciliationState::Upgrading));
    let message = event(&d, EventReason::RecoverDeployment);
    assert!(
        message.contains(&old)
            && message.contains("checkpoint 12")
            && message.contains(&plan.job_id),
        "{message}"
    );
    assert!(error(&d).starts_with(JOB_MISSING), "{}", error(&d));

    // a crash after the record: submitted again under the recorded id, not a third one
    let recorded = after(j, &d);
    let again = decide(&recorded, Some(&s), &lost_obs(None));
    assert_eq!(submit_plan(&again).job_id, plan.job_id);
    assert_eq!(submit_plan(&again).restore_path, plan.restore_path);

    // found, then RUNNING: deployed, and the message is gone
    let running_obs = obs(found(&plan.job_id, FlinkJobState::Running));
    let deployed = after(recorded.clone(), &decide(&recorded, Some(&s), &running_obs));
    let stable = decide(&deployed, Some(&s), &running_obs);
    assert_eq!(stable.status.error, None);
    assert_eq!(
        stable.status.lifecycle_state,
        Some(ResourceLifecycleState::Stable)
    );

    // lost again: yet another id
    let third = decide(
        &after(deployed, &stable),
        Some(&s),
        &lost_obs(Some(chk(&plan.job_id, 2, 950))),
    );
    let third = submit_plan(&third);
    assert!(third.job_id != plan.job_id && third.job_id != old);
    assert_eq!(third.restore_path, Some(chk(&plan.job_id, 2, 950).path));
}

#[test]
fn a_lost_job_waits_while_its_session_cluster_is_not_ready() {
    let j = running_job(UpgradeMode::LastState);
    let old = job_id(&j);
    let d = decide(
        &j,
        Some(&session(false)),
        &lost_obs(Some(chk(&old, 12, 900))),
    );
    assert!(d.actions.is_empty());
    assert!(error(&d).starts_with(WAITING), "{}", error(&d));
    assert_eq!(job_id(&after(j, &d)), old, "nothing recorded");
}

#[test]
fn a_lost_stateful_job_without_state_on_storage_is_blocked_and_nothing_is_submitted() {
    for mode in [UpgradeMode::LastState, UpgradeMode::Savepoint] {
        let j = running_job(mode);
        let d = decide(&j, Some(&session(true)), &lost_obs(None));
        assert_blocked(&j, &d);
        assert_eq!(
            d.events
                .iter()
                .filter(|e| e.reason == EventReason::RecoverDeployment)
                .count(),
            1
        );
    }
    // storage that cannot be listed proves nothing either
    let j = running_job(UpgradeMode::Savepoint);
    let mut o = lost_obs(None);
    o.progress.checkpoint_lookup_complete = false;
    let d = decide(&j, Some(&session(true)), &o);
    assert_blocked(&j, &d);
    assert!(error(&d).contains("cannot be listed"), "{}", error(&d));
}

#[test]
fn a_lost_stateless_job_is_resubmitted_empty() {
    let j = running_job(UpgradeMode::Stateless);
    let d = decide(&j, Some(&session(true)), &lost_obs(None));
    assert_eq!(submit_plan(&d).restore_path, None);
    assert!(event(&d, EventReason::RecoverDeployment).contains("empty state"));
}

#[test]
fn a_lost_job_is_only_reported_without_jm_deployment_recovery() {
    let j = running(job(UpgradeMode::LastState).with_config(JM_RECOVERY, "false"));
    let old = job_id(&j);
    let d = decide(
        &j,
        Some(&session(true)),
        &lost_obs(Some(chk(&old, 12, 900))),
    );
    assert!(d.actions.is_empty());
    let error = error(&d);
    assert!(
        error.starts_with(JOB_MISSING) && error.contains("jm-deployment-recovery.enabled is false"),
        "{error}"
    );
}

#[test]
fn resubmissions_of_one_generation_get_new_derived_ids() {
    let first = job_id_for("uid-1", 3);
    let second = next_job_id("uid-1", 3, Some(&first));
    let third = next_job_id("uid-1", 3, Some(&second));
    assert!(first != second && second != third && first != third);
    assert_eq!(second, next_job_id("uid-1", 3, Some(&first)), "derived");
    assert!(second.parse::<flink::JobId>().is_ok(), "{second}");
    // a new generation starts over; an id of another generation or resource is not counted
    assert_eq!(
        next_job_id("uid-1", 4, Some(&third)),
        job_id_for("uid-1", 4)
    );
    assert_eq!(
        next_job_id("uid-1", 3, Some(&job_id_for("uid-2", 3))),
        first
    );
    assert_eq!(next_job_id("uid-1", 3, None), first);
}

#[test]
fn a_job_seen_ending_for_good_is_not_resubmitted_when_flink_forgets_it() {
    let s = session(true);
    for end in [
        FlinkJobState::Finished,
        FlinkJobState::Canceled,
        FlinkJobState::Failed,
    ] {
        let j = running_job(UpgradeMode::Stateless);
        let id = job_id(&j);
        let ended = after(j.clone(), &decide(&j, Some(&s), &obs(found(&id, end))));
        let forgotten = decide(&ended, Some(&s), &lost_obs(None));
        assert!(
            forgotten.actions.is_empty(),
            "{end:?}: {:?}",
            forgotten.actions
        );
    }
}

#[test]
fn a_failed_job_waits_briefly_for_its_cause_then_is_resubmitted_without_one() {
    let j = running(job(UpgradeMode::LastState).with_config(RESTART_FAILED, "true"));
    let old = job_id(&j);
    let mut o = failed_obs(&old, Some(chk(&old, 7, 900)));
    // Flink reports FAILED before the failure is in its exception history
    o.failure_cause = None;
    let d = decide(&j, Some(&session(true)), &o);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.requeue_after, settings().transition_interval);
    assert_eq!(job_id(&after(j.clone(), &d)), old, "nothing recorded");

    // long after the failure, still no cause: resubmitted all the same, saying so
    if let JobObservation::Found(info) = &mut o.job {
        info.update_time_ms = 1_000 - 10_000;
    }
    let d = decide(&j, Some(&session(true)), &o);
    assert_eq!(submit_plan(&d).restore_path, Some(chk(&old, 7, 900).path));
    let message = event(&d, EventReason::RestartFailedJob);
    assert!(message.contains("(no cause reported)"), "{message}");
}
