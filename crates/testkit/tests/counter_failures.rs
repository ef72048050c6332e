//! The counter job's deliberate failures, which later tests use to make jobs fail on purpose.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use flinkpilot_testkit::{
    CounterArgs, CounterOutput, FlinkDist, RestartStrategy, SessionCluster, TestJob,
};

#[tokio::test(flavor = "multi_thread")]
async fn deliberate_failures_end_the_job_failed_with_a_recognisable_root_cause() {
    let dist = FlinkDist::get_default();
    let job = TestJob::build_for("counter", dist);
    let cluster = SessionCluster::builder(dist)
        .restart_strategy(RestartStrategy::None)
        .start()
        .await;
    let timeout = Duration::from_secs(90);

    // --fail-at-count: keys alternate 0,1,0,1,… so key 0 is the first to reach 10, and the
    // record that would have made it 10 is never counted.
    let out_dir = tempfile::tempdir().unwrap();
    let args = CounterArgs::default()
        .rate(100)
        .keys(2)
        .fail_at_count(10)
        .output(out_dir.path());
    let job_id = common::submit(&cluster, &job, &args.to_args(), 1).await;
    common::wait_for_state(&cluster, &job_id, "FAILED", timeout).await;
    let exceptions = common::exceptions(&cluster, &job_id).await;
    assert!(
        exceptions.contains("flinkpilot.jobs.Counter$DeliberateFailure"),
        "{exceptions}"
    );
    assert!(
        exceptions.contains("key 0 reached count 10 (--fail-at-count 10)"),
        "{exceptions}"
    );
    let counts = CounterOutput::new(out_dir.path()).max_counts();
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), [(0, 9), (1, 9)]);

    // --fail-on-start: the counting operator throws as it opens, before counting anything.
    let out_dir = tempfile::tempdir().unwrap();
    let args = CounterArgs::default()
        .output(out_dir.path())
        .fail_on_start();
    let job_id = common::submit(&cluster, &job, &args.to_args(), 1).await;
    common::wait_for_state(&cluster, &job_id, "FAILED", timeout).await;
    let exceptions = common::exceptions(&cluster, &job_id).await;
    assert!(
        exceptions.contains("deliberate failure on start (--fail-on-start)"),
        "{exceptions}"
    );
    assert!(CounterOutput::new(out_dir.path()).records().is_empty());
}
