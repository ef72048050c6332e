//! The client against real Flink session clusters, the same scenarios on every supported
//! version (2.3 and 1.20), with the counter job. One cluster per version is shared by all
//! scenarios of that version; scenarios run in parallel, each with its own jobs.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod cluster;
mod harness;
mod jobs;
mod metrics;
mod proxy;
mod scaling;
mod snapshots;

/// Generates one `#[tokio::test]` per scenario and version: `flink_2_3::<scenario>` and
/// `flink_1_20::<scenario>`.
macro_rules! on_every_version {
    ($($module:ident :: $scenario:ident),* $(,)?) => {
        /// Scenarios per version: the shared cluster stops when this many have finished.
        const SCENARIOS: usize = [$(stringify!($scenario)),*].len();
        mod flink_2_3 {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $scenario() {
                    let shared = crate::harness::lease(testkit::FLINK_2_3, crate::SCENARIOS);
                    crate::$module::$scenario(&shared).await;
                }
            )*
        }
        mod flink_1_20 {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $scenario() {
                    let shared = crate::harness::lease(testkit::FLINK_1_20, crate::SCENARIOS);
                    crate::$module::$scenario(&shared).await;
                }
            )*
        }
    };
}

on_every_version!(
    cluster::health_reports_the_flink_version_and_cluster,
    cluster::unknown_job_and_trigger_are_not_found,
    proxy::path_prefix_and_bearer_token_reach_flink_through_a_proxy,
    jobs::uploaded_jar_runs_until_running_and_can_be_deleted,
    jobs::cancelled_job_ends_canceled_and_fresh_run_counts_from_one,
    jobs::forced_failure_root_cause_is_read_from_exceptions,
    snapshots::checkpoints_complete_and_latest_is_retained_on_disk,
    snapshots::manual_checkpoint_completes_where_supported,
    snapshots::savepoint_writes_metadata_on_disk,
    snapshots::savepoint_trigger_with_the_same_id_is_taken_once,
    snapshots::failing_savepoint_reports_flinks_cause_and_job_keeps_running,
    snapshots::stop_with_savepoint_finishes_job_and_rerun_continues_counts,
    snapshots::disposed_savepoint_directory_is_gone,
    metrics::vertex_and_job_metrics_are_read_while_running,
    scaling::resource_requirements_rescale_the_running_job,
    scaling::rescale_history_is_unsupported_before_flink_2,
);
