//! Cluster endpoints and the errors for things that do not exist.

use std::time::Duration;

use flinkpilot_flink::{Error, JobId, OperationKind, PollOptions, SavepointRequest, TriggerId};
use testkit::CounterArgs;

use crate::harness::{Shared, file_uri};

pub async fn health_reports_the_flink_version_and_cluster(shared: &Shared) {
    let client = shared.client();
    assert_eq!(client.cached_version(), None);
    let health = client.health().await.unwrap();
    assert_eq!(health.version.raw, shared.version());
    assert_eq!(client.cached_version(), Some(health.version.clone()));
    assert_eq!(health.overview.taskmanagers, 1);
    assert_eq!(health.overview.slots_total, 16);
    assert_eq!(health.overview.flink_version, shared.version());

    let config = client.jobmanager_config().await.unwrap();
    assert_eq!(
        config.get("rest.port").map(String::as_str),
        Some(shared.cluster.rest_port().to_string().as_str())
    );
    // The compat layer finds the savepoint directory under the key this version reads.
    assert_eq!(
        health.version.default_savepoint_dir(&config),
        Some(file_uri(&shared.cluster.savepoint_dir()).as_str())
    );

    let tms = client.taskmanagers().await.unwrap();
    assert_eq!(tms.len(), 1);
    assert_eq!(tms[0].slots, 16);
    let details = client.taskmanager(&tms[0].id).await.unwrap();
    assert_eq!(details.info.id, tms[0].id);
    assert!(details.metrics.contains_key("heapUsed"), "{details:?}");
}

pub async fn unknown_job_and_trigger_are_not_found(shared: &Shared) {
    let client = shared.client();
    let unknown = JobId::generate();
    for err in [
        client.job(&unknown).await.unwrap_err(),
        client.job_state(&unknown).await.unwrap_err(),
        client.job_exceptions(&unknown, None).await.unwrap_err(),
        client.checkpoints(&unknown).await.unwrap_err(),
        client.cancel_job(&unknown).await.unwrap_err(),
        // Flink answers 500 here; it is still a missing job.
        client.resource_requirements(&unknown).await.unwrap_err(),
    ] {
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert!(
            err.to_string().contains(shared.cluster.rest_url().as_str()),
            "{err}"
        );
    }

    // Flink accepts a savepoint trigger for any job id; the failure shows when polled.
    let trigger = client
        .trigger_savepoint(&unknown, &SavepointRequest::default())
        .await
        .unwrap();
    let poll = PollOptions::new(Duration::from_secs(30), Duration::from_millis(100));
    let err = client
        .await_savepoint(&unknown, OperationKind::Savepoint, &trigger, poll)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains(unknown.as_str()), "{err}");

    // A trigger id Flink never saw, on a job that exists.
    let job = shared
        .run_counter(&client, CounterArgs::default(), 1, None)
        .await;
    let err = client
        .savepoint_status(&job, &TriggerId::generate())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    client.cancel_job(&job).await.unwrap();
}
