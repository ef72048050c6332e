//! Typed client of the Flink JobManager REST API, Flink configuration rendering and
//! the differences between Flink versions.
//!
//! One [`FlinkClient`] per JobManager, built from a [`ClientConfig`] (base URL with an
//! optional path prefix, bearer token, TLS, timeout, retry policy of reads). Every call
//! returns a typed [`Error`] naming the endpoint and the JobManager. Operations that Flink
//! runs asynchronously (savepoints, stop-with-savepoint, checkpoints, disposal) share one
//! protocol implementation in [`ops`]; version differences live in [`compat`].
//! A [`CallObserver`] set on the config sees every HTTP call (endpoint path template, method,
//! outcome class, duration), e.g. for a latency histogram.
//!
//! A crash-safe savepoint, as a controller takes it: the trigger id is chosen and recorded
//! first, so after a crash the same id is polled (or triggered again; Flink treats a repeated
//! trigger id as the same savepoint) instead of taking a second one.
//!
//! ```no_run
//! use flinkpilot_flink::{
//!     Error, FlinkClient, JobId, OperationKind, OperationStatus, PollOptions, SavepointRequest,
//!     TriggerId,
//! };
//! # async fn example(job: JobId) -> Result<(), Error> {
//! let client = FlinkClient::from_url("http://localhost:8081")?;
//! let health = client.health().await?; // Unreachable / NotFlink / the version
//! println!("{} with {} TaskManagers", health.version, health.overview.taskmanagers);
//!
//! let trigger = TriggerId::generate(); // persist it before triggering
//! let request = SavepointRequest {
//!     target_directory: Some("file:///savepoints".into()),
//!     trigger_id: Some(trigger.clone()),
//!     ..SavepointRequest::default()
//! };
//! client.trigger_savepoint(&job, &request).await?;
//! // Either poll once per reconcile pass ...
//! if let OperationStatus::Completed(path) = client.savepoint_status(&job, &trigger).await? {
//!     println!("savepoint at {path}");
//! }
//! // ... or wait for it.
//! let path = client
//!     .await_savepoint(&job, OperationKind::Savepoint, &trigger, PollOptions::default())
//!     .await?;
//! # Ok(()) }
//! ```

mod call;
pub mod checkpoints;
pub mod client;
pub mod cluster;
pub mod compat;
pub mod config;
pub mod error;
pub mod ids;
pub mod jars;
pub mod jobs;
pub mod metrics;
pub mod observe;
pub mod ops;
pub mod retry;
pub mod savepoints;
pub mod scaling;
pub mod settings;

pub use checkpoints::{CheckpointRequest, CheckpointStats, CheckpointSummary, CheckpointType};
pub use client::{BearerToken, ClientConfig, ClientIdentity, FlinkClient, TlsConfig};
pub use cluster::{ClusterHealth, ClusterOverview};
pub use compat::FlinkVersion;
pub use error::{CallSite, Error, FailureCause, Result};
pub use ids::{JobId, TriggerId, VertexId};
pub use jars::{JarId, RunJarRequest, SubmittedJob};
pub use jobs::{JobDetails, JobExceptions, JobState};
pub use observe::{CallObserver, CallOutcome, ObservedCall, Observer};
pub use ops::{OperationKind, OperationStatus, PollOptions};
pub use retry::RetryPolicy;
pub use savepoints::{SavepointFormat, SavepointRequest, StopRequest};
pub use scaling::{ParallelismBounds, ResourceRequirements};
