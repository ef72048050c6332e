//! Smoke test on every supported Flink version: a real session cluster runs the counter job,
//! and its output shows per-key counts rising.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use flinkpilot_testkit::{
    CounterArgs, CounterOutput, FLINK_1_20, FLINK_2_3, FlinkDist, SessionCluster, TestJob,
    wait_until_async,
};

const KEYS: u64 = 4;
const PARALLELISM: u32 = 2;

async fn counter_counts_rise(version: &str) {
    let dist = FlinkDist::get(version);
    assert_eq!(dist.version, version);
    let job = TestJob::build_for("counter", dist);
    let cluster = SessionCluster::builder(dist).start().await;
    let out_dir = tempfile::tempdir().unwrap();
    let output = CounterOutput::new(out_dir.path());

    let args = CounterArgs::default()
        .rate(40)
        .keys(KEYS)
        .output(out_dir.path())
        .to_args();
    let job_id = common::submit(&cluster, &job, &args, PARALLELISM).await;
    common::wait_for_state(&cluster, &job_id, "RUNNING", Duration::from_secs(60)).await;

    let timeout = Duration::from_secs(90);
    wait_until_async(timeout, "every key to be counted", async || {
        output.max_counts().len() == KEYS as usize
    })
    .await;
    let before = output.max_counts();
    wait_until_async(timeout, "every key's count to rise", async || {
        let now = output.max_counts();
        before.iter().all(|(key, count)| now[key] > *count)
    })
    .await;

    // No restart happened, so each key was counted 1, 2, 3, … without gaps or repeats.
    let mut counts: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for record in output.records() {
        counts.entry(record.key).or_default().push(record.count);
    }
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        (0..KEYS).collect::<Vec<_>>()
    );
    for (key, mut seen) in counts {
        seen.sort_unstable();
        let expected: Vec<u64> = (1..=seen.len() as u64).collect();
        assert_eq!(seen, expected, "counts of key {key}");
    }

    // One file per subtask, named by job id, so later runs never write into this run's files.
    let files: Vec<String> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), PARALLELISM as usize, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.starts_with(&job_id) && f.ends_with(".csv")),
        "{files:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn counter_counts_rise_on_flink_2_3() {
    counter_counts_rise(FLINK_2_3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn counter_counts_rise_on_flink_1_20() {
    counter_counts_rise(FLINK_1_20).await;
}
