//! Checkpoints and savepoints on real Flink, checked on disk and through the job's state.

use std::collections::BTreeMap;
use std::time::Duration;

use flinkpilot_flink::checkpoints::CheckpointType;
use flinkpilot_flink::jobs::JobState;
use flinkpilot_flink::{
    CheckpointRequest, Error, OperationKind, OperationStatus, PollOptions, SavepointFormat,
    SavepointRequest, StopRequest, TriggerId,
};
use testkit::{CounterArgs, CounterOutput, wait_for, wait_until_async};

use crate::harness::{JOB_TIMEOUT, Shared, file_uri, local_path};

fn poll() -> PollOptions {
    PollOptions::new(JOB_TIMEOUT, Duration::from_millis(200))
}

pub async fn checkpoints_complete_and_latest_is_retained_on_disk(shared: &Shared) {
    let client = shared.client();
    let args = CounterArgs::default().checkpoint_interval(Duration::from_millis(500));
    let job = shared.run_counter(&client, args, 1, None).await;

    let config = client.checkpoint_config(&job).await.unwrap();
    assert_eq!(config.interval, 500);
    assert_eq!(config.mode, "exactly_once");
    // The test cluster retains checkpoints on cancellation.
    assert!(config.externalization.enabled);
    assert!(!config.externalization.delete_on_cancellation);

    let latest = wait_for(JOB_TIMEOUT, "two completed checkpoints", async || {
        let stats = client.checkpoints(&job).await.unwrap();
        (stats.counts.completed >= 2).then_some(stats.latest.completed)
    })
    .await
    .unwrap();
    assert_eq!(latest.status, "COMPLETED");
    assert!(!latest.is_savepoint);
    let path = latest.external_path.clone().unwrap();
    assert!(path.contains(job.as_str()), "{path}");

    // After a cancel, the latest completed checkpoint stays: what a last-state upgrade uses.
    // Flink caches checkpoint statistics for a few seconds, so the first answers after the
    // cancel may still name a checkpoint that a later one has since replaced.
    client.cancel_job(&job).await.unwrap();
    shared.wait_state(&client, &job, JobState::Canceled).await;
    let (last, metadata) = wait_for(JOB_TIMEOUT, "the retained checkpoint on disk", async || {
        let last = client
            .latest_completed_checkpoint(&job)
            .await
            .unwrap()
            .unwrap();
        let metadata = local_path(last.external_path.as_deref().unwrap()).join("_metadata");
        metadata.is_file().then_some((last, metadata))
    })
    .await;
    assert!(last.id >= latest.id);
    assert!(metadata.starts_with(shared.cluster.checkpoint_dir()));
}

pub async fn manual_checkpoint_completes_where_supported(shared: &Shared) {
    let client = shared.client();
    // Periodic checkpoints far apart, so the manual one is the only one in the window.
    let args = CounterArgs::default().checkpoint_interval(Duration::from_secs(3600));
    let job = shared.run_counter(&client, args, 1, None).await;

    let request = CheckpointRequest {
        checkpoint_type: CheckpointType::Full,
        trigger_id: None,
    };
    let id = client.checkpoint(&job, &request, poll()).await.unwrap();
    let stats = client.checkpoints(&job).await.unwrap();
    let taken = stats
        .history
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("checkpoint {id} not in {:?}", stats.history));
    assert_eq!(taken.status, "COMPLETED");
    assert!(taken.external_path.is_some());

    // Both versions refuse incremental manual checkpoints; the client says so up front.
    let err = client
        .trigger_checkpoint(
            &job,
            &CheckpointRequest {
                checkpoint_type: CheckpointType::Incremental,
                trigger_id: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains(shared.version()), "{err}");
    client.cancel_job(&job).await.unwrap();
}

pub async fn savepoint_writes_metadata_on_disk(shared: &Shared) {
    let client = shared.client();
    let job = shared
        .run_counter(&client, CounterArgs::default(), 2, None)
        .await;
    let target = tempfile::tempdir().unwrap();

    for format in [SavepointFormat::Canonical, SavepointFormat::Native] {
        let request = SavepointRequest {
            target_directory: Some(file_uri(target.path())),
            format_type: Some(format),
            ..SavepointRequest::default()
        };
        let location = client.savepoint(&job, &request, poll()).await.unwrap();
        let dir = local_path(&location);
        assert!(dir.starts_with(target.path()), "{location}");
        assert!(
            dir.join("_metadata").is_file(),
            "no _metadata in {location}"
        );
    }
    // Without a target, the cluster's default savepoint directory is used.
    let location = client
        .savepoint(&job, &SavepointRequest::default(), poll())
        .await
        .unwrap();
    assert!(local_path(&location).starts_with(shared.cluster.savepoint_dir()));
    assert!(local_path(&location).join("_metadata").is_file());

    let stats = client.checkpoints(&job).await.unwrap();
    let latest = stats.latest.savepoint.unwrap();
    assert!(latest.is_savepoint);
    assert_eq!(latest.external_path.as_deref(), Some(location.as_str()));
    // A savepoint (without cancel-job) leaves the job running.
    assert_eq!(client.job_state(&job).await.unwrap(), JobState::Running);
    client.cancel_job(&job).await.unwrap();
}

pub async fn savepoint_trigger_with_the_same_id_is_taken_once(shared: &Shared) {
    let client = shared.client();
    let job = shared
        .run_counter(&client, CounterArgs::default(), 1, None)
        .await;
    let target = tempfile::tempdir().unwrap();
    // A controller records the id first, then triggers; after a crash it triggers again.
    let id = TriggerId::generate();
    let request = SavepointRequest {
        target_directory: Some(file_uri(target.path())),
        trigger_id: Some(id.clone()),
        ..SavepointRequest::default()
    };
    assert_eq!(client.trigger_savepoint(&job, &request).await.unwrap(), id);
    assert_eq!(client.trigger_savepoint(&job, &request).await.unwrap(), id);
    let location = client
        .await_savepoint(&job, OperationKind::Savepoint, &id, poll())
        .await
        .unwrap();
    let status = client.savepoint_status(&job, &id).await.unwrap();
    assert_eq!(status, OperationStatus::Completed(location.clone()));
    let dirs: Vec<_> = std::fs::read_dir(target.path()).unwrap().collect();
    assert_eq!(dirs.len(), 1, "one savepoint, not two: {dirs:?}");
    client.cancel_job(&job).await.unwrap();
}

pub async fn failing_savepoint_reports_flinks_cause_and_job_keeps_running(shared: &Shared) {
    let client = shared.client();
    let job = shared
        .run_counter(&client, CounterArgs::default(), 1, None)
        .await;
    let request = SavepointRequest {
        // Nobody can create directories under /proc.
        target_directory: Some("file:///proc/flinkpilot-no-such-dir".into()),
        ..SavepointRequest::default()
    };
    let err = client.savepoint(&job, &request, poll()).await.unwrap_err();
    let Error::OperationFailed {
        operation, cause, ..
    } = &err
    else {
        panic!("expected OperationFailed, got {err}");
    };
    assert_eq!(*operation, OperationKind::Savepoint);
    assert!(
        cause
            .root_cause
            .as_deref()
            .is_some_and(|c| c.contains("/proc/flinkpilot-no-such-dir")),
        "{cause:?}"
    );
    assert!(
        err.to_string().contains("/proc/flinkpilot-no-such-dir"),
        "{err}"
    );
    assert_eq!(client.job_state(&job).await.unwrap(), JobState::Running);
    client.cancel_job(&job).await.unwrap();
}

pub async fn stop_with_savepoint_finishes_job_and_rerun_continues_counts(shared: &Shared) {
    let client = shared.client();
    let (first_out, second_out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = CounterOutput::new(first_out.path());
    let args = |dir: &std::path::Path| CounterArgs::default().rate(40).keys(4).output(dir);
    let job = shared
        .run_counter(&client, args(first_out.path()), 2, None)
        .await;
    wait_until_async(JOB_TIMEOUT, "every key to count past 5", async || {
        let max = first.max_counts();
        max.len() == 4 && max.values().all(|c| *c > 5)
    })
    .await;

    let target = tempfile::tempdir().unwrap();
    let request = StopRequest {
        target_directory: Some(file_uri(target.path())),
        drain: false,
        format_type: Some(SavepointFormat::Canonical),
        trigger_id: None,
    };
    let location = client
        .stop_with_savepoint(&job, &request, poll())
        .await
        .unwrap();
    shared.wait_state(&client, &job, JobState::Finished).await;
    assert!(local_path(&location).join("_metadata").is_file());
    let stopped_at: BTreeMap<u64, u64> = first.max_counts();

    // Restored from the savepoint, each key continues right after its last count.
    let second = CounterOutput::new(second_out.path());
    let rerun = shared
        .run_counter(&client, args(second_out.path()), 2, Some(&location))
        .await;
    wait_until_async(JOB_TIMEOUT, "every key to be counted again", async || {
        second.max_counts().len() == 4
    })
    .await;
    let mut resumed: BTreeMap<u64, u64> = BTreeMap::new();
    for r in second.records() {
        let c = resumed.entry(r.key).or_insert(r.count);
        *c = (*c).min(r.count);
    }
    let expected: BTreeMap<u64, u64> = stopped_at.iter().map(|(k, c)| (*k, c + 1)).collect();
    assert_eq!(resumed, expected, "counts after restore vs. before stop");
    let restored = client.checkpoints(&rerun).await.unwrap().latest.restored;
    assert_eq!(
        restored.and_then(|r| r.external_path).as_deref(),
        Some(location.as_str())
    );
    client.cancel_job(&rerun).await.unwrap();
}

pub async fn disposed_savepoint_directory_is_gone(shared: &Shared) {
    let client = shared.client();
    let job = shared
        .run_counter(&client, CounterArgs::default(), 1, None)
        .await;
    let target = tempfile::tempdir().unwrap();
    let request = SavepointRequest {
        target_directory: Some(file_uri(target.path())),
        ..SavepointRequest::default()
    };
    let location = client.savepoint(&job, &request, poll()).await.unwrap();
    let dir = local_path(&location);
    assert!(dir.join("_metadata").is_file());

    client.dispose_savepoint(&location, poll()).await.unwrap();
    assert!(!dir.exists(), "{} still exists", dir.display());

    // Disposing it again fails with Flink's reason, naming the path.
    let err = client
        .dispose_savepoint(&location, poll())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::OperationFailed {
                operation: OperationKind::SavepointDisposal,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(dir.to_str().unwrap()), "{err}");
    client.cancel_job(&job).await.unwrap();
}
