//! In-place rescaling through the adaptive scheduler.

use flinkpilot_flink::Error;
use testkit::{CounterArgs, wait_for};

use crate::harness::{JOB_TIMEOUT, Shared};

pub async fn resource_requirements_rescale_the_running_job(shared: &Shared) {
    let client = shared.client();
    let job = shared
        .run_counter(&client, CounterArgs::default(), 2, None)
        .await;
    let before = client.resource_requirements(&job).await.unwrap();
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(before.values().all(|v| v.parallelism.upper_bound == 2));

    let sent = client.rescale(&job, 1).await.unwrap();
    assert!(sent.values().all(|v| v.parallelism.upper_bound == 1));
    assert_eq!(client.resource_requirements(&job).await.unwrap(), sent);
    wait_for(
        JOB_TIMEOUT,
        "every vertex to run with parallelism 1",
        async || {
            let details = client.job(&job).await.unwrap();
            let rescaled = details.vertices.iter().all(|v| v.parallelism == 1)
                && details.vertices.iter().all(|v| v.status == "RUNNING");
            rescaled.then_some(())
        },
    )
    .await;

    let err = client.rescale(&job, 0).await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    client.cancel_job(&job).await.unwrap();
}

pub async fn rescale_history_is_unsupported_before_flink_2(shared: &Shared) {
    let client = shared.client();
    let job = shared
        .run_counter(&client, CounterArgs::default(), 1, None)
        .await;
    // No health check first: the error learns the version by itself.
    assert_eq!(client.cached_version(), None);
    let result = client.rescales_overview(&job).await;
    if shared.is_flink_2() {
        let overview = result.unwrap();
        assert_eq!(overview.counts.failed, 0);
    } else {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("Flink 1.20"), "{err}");
    }
    client.cancel_job(&job).await.unwrap();
}
