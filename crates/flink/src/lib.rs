//! Typed client of the Flink JobManager REST API, Flink configuration rendering and
//! the differences between Flink versions.
//!
//! One [`FlinkClient`] per JobManager, built from a [`ClientConfig`] (base URL with an
//! optional path prefix, bearer token, TLS, timeout, retry policy of reads). Every call
//! returns a typed [`Error`] naming the endpoint and the JobManager. Operations that Flink
//! runs asynchronously (savepoints, stop-with-savepoint, checkpoints, disposal) share one
//! protocol implementation in [`ops`]; version differences live in [`compat`].

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
pub mod ops;
pub mod retry;
pub mod savepoints;
pub mod scaling;

pub use checkpoints::{CheckpointRequest, CheckpointStats, CheckpointSummary, CheckpointType};
pub use client::{BearerToken, ClientConfig, ClientIdentity, FlinkClient, TlsConfig};
pub use cluster::{ClusterHealth, ClusterOverview};
pub use compat::FlinkVersion;
pub use error::{CallSite, Error, FailureCause, Result};
pub use ids::{JobId, TriggerId, VertexId};
pub use jars::{JarId, RunJarRequest, SubmittedJob};
pub use jobs::{JobDetails, JobExceptions, JobState};
pub use ops::{OperationKind, OperationStatus, PollOptions};
pub use retry::RetryPolicy;
pub use savepoints::{SavepointFormat, SavepointRequest, StopRequest};
pub use scaling::{ParallelismBounds, ResourceRequirements};
