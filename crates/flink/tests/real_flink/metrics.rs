//! Metrics while the counter runs.

use testkit::{CounterArgs, wait_for};

use crate::harness::{JOB_TIMEOUT, Shared};

pub async fn vertex_and_job_metrics_are_read_while_running(shared: &Shared) {
    let client = shared.client();
    let job = shared
        .run_counter(&client, CounterArgs::default().rate(50), 2, None)
        .await;
    let details = client.job(&job).await.unwrap();
    let counting = details
        .vertices
        .iter()
        .find(|v| v.name.contains("count"))
        .unwrap_or_else(|| panic!("no counting vertex in {:?}", details.vertices));

    // Metrics are reported a few seconds after the tasks start; poll until records flow.
    let names = [
        "numRecordsInPerSecond",
        "busyTimeMsPerSecond",
        "backPressuredTimeMsPerSecond",
        "numRecordsIn",
    ];
    let aggregated = wait_for(
        JOB_TIMEOUT,
        "records into the counting vertex",
        async || {
            let m = client
                .subtask_metrics(&job, &counting.id, &names)
                .await
                .unwrap();
            m.get("numRecordsIn")
                .and_then(|a| a.sum)
                .is_some_and(|sum| sum > 0.0)
                .then_some(m)
        },
    )
    .await;
    for name in names {
        let metric = aggregated
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert!(metric.min.is_some() && metric.max.is_some() && metric.avg.is_some());
    }

    let per_subtask = client
        .vertex_metrics(&job, &counting.id, &["0.numRecordsIn", "1.numRecordsIn"])
        .await
        .unwrap();
    assert!(
        per_subtask.f64("0.numRecordsIn").is_some(),
        "{per_subtask:?}"
    );
    assert!(
        per_subtask.f64("1.numRecordsIn").is_some(),
        "{per_subtask:?}"
    );
    let available = client
        .available_vertex_metrics(&job, &counting.id)
        .await
        .unwrap();
    assert!(available.iter().any(|n| n == "0.busyTimeMsPerSecond"));

    let job_metrics = client
        .job_metrics(&job, &["numRestarts", "uptime", "noSuchMetric"])
        .await
        .unwrap();
    assert_eq!(job_metrics.f64("numRestarts"), Some(0.0));
    assert!(job_metrics.f64("uptime").is_some_and(|u| u > 0.0));
    assert_eq!(job_metrics.get("noSuchMetric"), None);
    client.cancel_job(&job).await.unwrap();
}
