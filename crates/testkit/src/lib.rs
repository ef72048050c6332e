//! Test support only: provisions a real Flink, builds the test jobs under `jobs/`, starts
//! clusters, and fakes the Kubernetes API server. Nothing in the product depends on it.
//!
//! Everything here fails loudly: when Flink, Java or a job cannot be provided, the calling
//! test panics with the reason, and never passes by skipping.
//!
//! ```no_run
//! use flinkpilot_testkit::{CounterArgs, FlinkDist, SessionCluster, TestJob};
//! # async fn example() {
//! let dist = FlinkDist::get_default();
//! let job = TestJob::build_for("counter", dist);
//! let cluster = SessionCluster::builder(dist).taskmanagers(1).slots(2).start().await;
//! // submit `job.jar` with `CounterArgs::default().output(..).to_args()` to `cluster.rest_url()`
//! # }
//! ```

mod cluster;
mod counter;
mod dist;
mod job;
pub mod kube_fake;
mod process;
pub use process::live_processes_in_groups;
mod wait;

pub use cluster::{KEEP_DIR_ENV, RestartStrategy, SessionCluster, SessionClusterBuilder};
pub use counter::{CounterArgs, CounterOutput, CounterRecord, now_millis};
pub use dist::{DEFAULT_VERSION_ENV, FLINK_1_20, FLINK_2_3, FlinkDist, SUPPORTED_VERSIONS};
pub use job::TestJob;
pub use wait::{wait_for, wait_until, wait_until_async};

use std::path::PathBuf;

/// The repository root, where `scripts/` and `jobs/` live.
pub fn repo_root() -> PathBuf {
    // crates/testkit → the workspace root, fixed at compile time
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}
