//! Where Flink processes live: the one trait each backend implements.

use std::fmt;
use std::future::Future;

use crate::observation::ClusterObservation;
use crate::plan::ClusterPlan;

/// Identifies one resource (and the cluster that belongs to it) in every backend.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    /// Namespace (`default` when a local manifest names none).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ResourceKey {
    /// A key from namespace and name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ResourceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A backend operation that failed. The message names the cluster and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Bad input the backend cannot act on (e.g. a `jarURI` scheme it cannot fetch). Retrying
    /// will not help until the spec changes.
    #[error("{key}: {message}")]
    Invalid {
        /// The resource.
        key: ResourceKey,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A failure that may pass (I/O, API server, process start). Retried with backoff.
    #[error("{key}: {message}")]
    Transient {
        /// The resource.
        key: ResourceKey,
        /// What failed.
        message: String,
    },
}

impl BackendError {
    /// `true` when retrying the same request may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, BackendError::Transient { .. })
    }
}

/// Where Flink clusters run: local processes or Kubernetes objects.
///
/// Every method is idempotent, so the engine can repeat any step after a crash: `deploy` of a
/// plan whose cluster already runs (same [`ClusterPlan::plan_hash`]) changes nothing, `delete` of
/// an absent cluster succeeds.
pub trait ClusterBackend: Send + Sync + 'static {
    /// What runs for `key` right now.
    fn observe(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<ClusterObservation, BackendError>> + Send;

    /// Brings up the cluster described by `plan`. If a cluster with a different plan exists,
    /// the engine deletes it first; a backend may refuse with `Invalid` rather than replace it.
    fn deploy(
        &self,
        key: &ResourceKey,
        plan: &ClusterPlan,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Removes the cluster and everything it runs, leaving no process or pod behind. Returns
    /// once nothing of it runs any more.
    fn delete(&self, key: &ResourceKey) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Sets the number of TaskManagers of a running cluster.
    fn scale(
        &self,
        key: &ResourceKey,
        taskmanagers: u32,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// A REST client of this cluster's JobManager (the URL may be an API-server proxy URL).
    fn flink_client(&self, key: &ResourceKey) -> Result<flink::FlinkClient, BackendError>;

    /// Whether a snapshot (savepoint or checkpoint directory holding `_metadata`) exists.
    /// `None` when this backend cannot look (e.g. `s3://` seen from outside the cluster): the
    /// engine then relies on what Flink's REST API reported.
    fn snapshot_exists(&self, path: &str) -> impl Future<Output = Option<bool>> + Send;

    /// The newest completed checkpoint (`…/chk-N`, holding `_metadata`) of `job_id` under the
    /// checkpoint directory `dir`, for last-state recovery when the JobManager is gone. `None`
    /// when there is none or this backend cannot look.
    fn latest_checkpoint_on_storage(
        &self,
        dir: &str,
        job_id: &str,
    ) -> impl Future<Output = Option<String>> + Send;

    /// Deletes the files of the snapshot at `path` directly on storage, for when no JobManager
    /// runs that could dispose it. A path that does not exist counts as deleted. `None` when
    /// this backend cannot reach that storage (the engine then needs a running cluster).
    fn dispose_snapshot(
        &self,
        path: &str,
    ) -> impl Future<Output = Option<Result<(), BackendError>>> + Send {
        let _ = path;
        async { None }
    }

    /// When the snapshot at `path` was completed (its `_metadata` written), epoch
    /// milliseconds; `None` when unknown. Recovery uses it to tell whether a checkpoint found
    /// on storage is newer than the last savepoint.
    fn snapshot_time(&self, path: &str) -> impl Future<Output = Option<i64>> + Send {
        let _ = path;
        async { None }
    }
}
