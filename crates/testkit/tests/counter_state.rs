//! The counter job keeps its counts in checkpointed state: after a failure Flink restores it
//! and the counts continue instead of starting again at 1.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use flinkpilot_testkit::{
    CounterArgs, CounterOutput, FlinkDist, RestartStrategy, SessionCluster, TestJob,
    live_processes_in_groups, now_millis, wait_for, wait_until_async,
};

const KEYS: u64 = 4;

#[tokio::test(flavor = "multi_thread")]
async fn counts_continue_after_a_taskmanager_is_killed() {
    let dist = FlinkDist::get_default();
    let job = TestJob::build_for("counter", dist);
    let restarts = RestartStrategy::FixedDelay {
        attempts: 20,
        delay: Duration::from_millis(500),
    };
    let mut cluster = SessionCluster::builder(dist)
        .restart_strategy(restarts)
        .start()
        .await;
    let timeout = Duration::from_secs(120);

    let out_dir = tempfile::tempdir().unwrap();
    let output = CounterOutput::new(out_dir.path());
    let args = CounterArgs::default()
        .rate(40)
        .keys(KEYS)
        .checkpoint_interval(Duration::from_millis(500))
        .output(out_dir.path());
    let job_id = common::submit(&cluster, &job, &args.to_args(), 2).await;
    wait_until_async(timeout, "every key to be counted", async || {
        output.max_counts().len() == KEYS as usize
    })
    .await;
    // A checkpoint triggered from now on holds a count of at least 1 for every key.
    let all_counted = now_millis();
    wait_for(
        timeout,
        "a checkpoint after every key was counted",
        async || {
            common::latest_checkpoint_millis(&cluster, &job_id)
                .await
                .filter(|t| *t > all_counted)
        },
    )
    .await;

    let before = output.max_counts();
    let pid = cluster.taskmanager_pid(0);
    cluster.kill_taskmanager(0);
    let killed = now_millis();
    assert!(
        live_processes_in_groups(&[pid]).is_empty(),
        "TaskManager {pid} survived SIGKILL"
    );
    cluster.add_taskmanager().await;

    wait_until_async(
        timeout,
        "every key to be counted again after the restart",
        async || output.first_counts_after(killed).len() == KEYS as usize,
    )
    .await;
    for (key, first) in output.first_counts_after(killed) {
        assert!(
            first > 1 && first <= before[&key] + 1,
            "key {key}: counted {} before the kill, then {first}: state was not restored\n{}",
            before[&key],
            cluster.log_tails(30)
        );
    }
}
