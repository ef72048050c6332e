//! End-to-end: session jobs recovered without anyone asking — lost with their session
//! cluster's JobManager, or FAILED with `kubernetes.operator.job.restart.failed` — resubmitted
//! from their newest checkpoint on a real Flink 2.3 session cluster.

use super::*;

#[test]
fn a_session_job_lost_with_its_killed_jobmanager_is_resubmitted_from_its_newest_checkpoint() {
    let mut env = Env::new();
    env.start_controller(&[]);
    env.apply(SESSION, &session_manifest());
    env.apply(
        "lost",
        &job_manifest(&env, "lost", "last-state", 20, "counter.jar"),
    );
    let j = wait_running(&env, "lost", None);
    let first = job_status(&j).0.expect("a job id");
    let out = env.output("lost");
    wait_counting_with_a_checkpoint(&env, &out, &first);

    // a real fault: the session cluster's JobManager dies, and with it (no HA) every job it ran
    let jm = env
        .flink_processes()
        .into_iter()
        .find(|(_, jm, n)| *jm && n == SESSION)
        .expect("the session cluster's JobManager runs");
    let killed_at = testkit::now_millis();
    crate::recovery::kill9(jm.0);

    // the session cluster comes back, and the job is resubmitted from its newest checkpoint
    let j = wait_running(&env, "lost", Some(&first));
    let restored = j
        .status
        .as_ref()
        .and_then(|s| s.job_status.as_ref())
        .and_then(|s| s.upgrade_savepoint_path.clone())
        .expect("the restored checkpoint is recorded");
    assert!(
        restored.contains(&format!("/{first}/chk-")),
        "restored from the lost job's newest checkpoint: {restored}"
    );
    let start = start_of(&j);
    env.wait_counting("lost", start, KEYS);
    crate::recovery::assert_restored(
        &out,
        "session JobManager killed",
        killed_at,
        start,
        crate::recovery::written_at(&restored),
    );
    let second = job_status(&j).0.expect("a job id");
    env.wait_event::<FlinkSessionJob>(
        "lost",
        "a RecoverDeployment event naming the lost job, the new one and the checkpoint",
        |r, m| {
            r == "RecoverDeployment"
                && m.contains(&first)
                && m.contains(&second)
                && m.contains(&restored)
        },
    );
    assert_eq!(env.jobmanagers(SESSION), 1, "one session JobManager");
    assert_eq!(flink_job_count(&env), 1, "resubmitted once");
}

#[test]
fn a_failed_session_job_is_resubmitted_from_its_newest_checkpoint_with_restart_failed() {
    let mut env = Env::new();
    env.start_controller(&[]);
    // Heartbeats notice a lost TaskManager within seconds.
    env.apply(
        SESSION,
        &session_manifest().replace(
            "    execution.checkpointing.interval: 1s\n",
            "    execution.checkpointing.interval: 1s\n    heartbeat.interval: \"1000\"\n    \
             heartbeat.timeout: \"5000\"\n",
        ),
    );
    // No restarts by Flink, so losing the TaskManager fails the job for good.
    let manifest = job_manifest(&env, "failing", "last-state", 20, "counter.jar")
        + "  flinkConfiguration:\n    restart-strategy.type: none\n    \
           kubernetes.operator.job.restart.failed: \"true\"\n";
    env.apply("failing", &manifest);
    let j = wait_running(&env, "failing", None);
    let first = job_status(&j).0.expect("a job id");
    let out = env.output("failing");
    wait_counting_with_a_checkpoint(&env, &out, &first);

    // a real fault: the session cluster's TaskManager dies, and Flink fails the job
    let tm = env
        .flink_processes()
        .into_iter()
        .find(|(_, jm, n)| !*jm && n == SESSION)
        .expect("the session cluster's TaskManager runs");
    let failed_at = testkit::now_millis();
    crate::recovery::kill9(tm.0);

    // resubmitted without anyone asking, from the failed job's newest checkpoint
    let j = wait_running(&env, "failing", Some(&first));
    assert_eq!(
        flink_job_state(&env, &first),
        "FAILED",
        "Flink failed the job"
    );
    let restored = j
        .status
        .as_ref()
        .and_then(|s| s.job_status.as_ref())
        .and_then(|s| s.upgrade_savepoint_path.clone())
        .expect("the restored checkpoint is recorded");
    assert!(
        restored.contains(&format!("/{first}/chk-")),
        "restored from the failed job's newest checkpoint: {restored}"
    );
    let second = job_status(&j).0.expect("a job id");
    env.wait_event::<FlinkSessionJob>(
        "failing",
        "a RestartFailedJob event naming the failed job, its cause, the new job and the checkpoint",
        |r, m| {
            r == "RestartFailedJob"
                && m.contains(&format!("job {first} failed ("))
                && !m.contains("(no cause reported)")
                && m.contains(&second)
                && m.contains(&restored)
        },
    );
    assert_eq!(
        error_of(&j),
        None,
        "the error is cleared once the new job runs"
    );
    let start = start_of(&j);
    env.wait_counting("failing", start, KEYS);
    crate::recovery::assert_restored(
        &out,
        "failed session job resubmitted",
        failed_at,
        start,
        crate::recovery::written_at(&restored),
    );
    assert_eq!(env.jobmanagers(SESSION), 1, "the same session cluster");
    assert_eq!(
        flink_job_count(&env),
        2,
        "resubmitted once (the failed job stays listed)"
    );
}

/// Waits until every key of `out` counted to 10 and job `job` of the session cluster has a
/// completed checkpoint on storage.
fn wait_counting_with_a_checkpoint(env: &Env, out: &testkit::CounterOutput, job: &str) {
    wait_until(START, "a few counts", || {
        out.max_counts().len() as u64 == KEYS && out.max_counts().values().all(|c| *c >= 10)
    });
    crate::recovery::wait_checkpoint(env, SESSION, job);
}
