//! Jars and jobs: upload, run, list, details, cancel, failures.

use flinkpilot_flink::RunJarRequest;
use flinkpilot_flink::jobs::JobState;
use testkit::{CounterArgs, CounterOutput, wait_for, wait_until_async};

use crate::harness::{JOB_TIMEOUT, Shared};

pub async fn uploaded_jar_runs_until_running_and_can_be_deleted(shared: &Shared) {
    let client = shared.client();
    let jar = client.upload_jar(&shared.counter.jar).await.unwrap();
    let listed = client.jars().await.unwrap();
    let info = listed
        .iter()
        .find(|j| j.id == jar)
        .unwrap_or_else(|| panic!("uploaded jar {jar} not listed: {listed:?}"));
    assert_eq!(
        info.entry.first().map(|e| e.name.as_str()),
        Some(shared.counter.entry_class.as_str())
    );

    let request = RunJarRequest {
        entry_class: Some(shared.counter.entry_class.clone()),
        program_args: CounterArgs::default().rate(20).to_args(),
        parallelism: Some(2),
        ..RunJarRequest::default()
    };
    let submitted = client.run_jar(&jar, &request).await.unwrap();
    // Only Flink 2 groups jobs into applications.
    assert_eq!(submitted.application_id.is_some(), shared.is_flink_2());
    let job = submitted.job_id;
    shared.wait_all_running(&client, &job).await;

    let details = client.job(&job).await.unwrap();
    assert_eq!(details.jid, job);
    assert_eq!(details.name, "counter");
    assert_eq!(details.parallelism(), 2);
    assert!(details.vertices.iter().all(|v| v.parallelism == 2));
    assert!(details.timestamps["RUNNING"] > 0);
    assert_eq!(details.application_id.is_some(), shared.is_flink_2());
    assert!(
        client
            .jobs()
            .await
            .unwrap()
            .iter()
            .any(|j| j.id == job && j.status == JobState::Running)
    );
    let overview = client.jobs_overview().await.unwrap();
    let row = overview.iter().find(|j| j.jid == job).unwrap();
    assert_eq!(row.state, JobState::Running);
    assert_eq!(row.scheduler_type.is_some(), shared.is_flink_2());
    let config = client.job_config(&job).await.unwrap();
    assert_eq!(config.execution_config.job_parallelism, 2);

    client.delete_jar(&jar).await.unwrap();
    assert!(!client.jars().await.unwrap().iter().any(|j| j.id == jar));
    // Deleting the jar does not touch the job it started.
    assert_eq!(client.job_state(&job).await.unwrap(), JobState::Running);
    client.cancel_job(&job).await.unwrap();
}

pub async fn cancelled_job_ends_canceled_and_fresh_run_counts_from_one(shared: &Shared) {
    let client = shared.client();
    let out = tempfile::tempdir().unwrap();
    let output = CounterOutput::new(out.path());
    let args = CounterArgs::default().rate(40).keys(4).output(out.path());
    let job = shared.run_counter(&client, args, 2, None).await;

    wait_until_async(JOB_TIMEOUT, "every key to be counted", async || {
        output.max_counts().len() == 4
    })
    .await;
    // A run without a savepoint starts from empty state: every key's first count is 1.
    let mut first = std::collections::BTreeMap::new();
    for r in output.records() {
        let f = first.entry(r.key).or_insert(r.count);
        *f = (*f).min(r.count);
    }
    assert!(first.values().all(|c| *c == 1), "{first:?}");

    client.cancel_job(&job).await.unwrap();
    shared.wait_state(&client, &job, JobState::Canceled).await;
    // Details come from a cache refreshed every few seconds; they catch up.
    let details = wait_for(
        JOB_TIMEOUT,
        "details to show the cancellation",
        async || {
            let details = client.job(&job).await.unwrap();
            (details.state == JobState::Canceled).then_some(details)
        },
    )
    .await;
    assert!(details.end_time > 0);
    assert!(details.timestamps["CANCELED"] > 0);
}

pub async fn forced_failure_root_cause_is_read_from_exceptions(shared: &Shared) {
    let client = shared.client();
    let args = CounterArgs::default().rate(50).keys(2).fail_at_count(10);
    let request = RunJarRequest {
        entry_class: Some(shared.counter.entry_class.clone()),
        program_args: args.to_args(),
        parallelism: Some(1),
        ..RunJarRequest::default()
    };
    let job = client.run_jar(&shared.jar, &request).await.unwrap().job_id;
    // The cluster has restarts disabled, so the first failure is final.
    shared.wait_state(&client, &job, JobState::Failed).await;

    let exceptions = wait_for(
        JOB_TIMEOUT,
        "the failure in the exception history",
        async || {
            let ex = client.job_exceptions(&job, Some(5)).await.unwrap();
            ex.root_cause.is_some().then_some(ex)
        },
    )
    .await;
    let root = exceptions.root_cause.unwrap();
    assert_eq!(
        root.class.as_deref(),
        Some("flinkpilot.jobs.Counter$DeliberateFailure"),
        "{root:?}"
    );
    assert!(
        root.message
            .contains("reached count 10 (--fail-at-count 10)"),
        "{root:?}"
    );
    assert!(root.timestamp.is_some_and(|t| t > 0));
    assert!(root.stack_trace.contains("processElement"));
    assert!(!exceptions.history.is_empty());
}
