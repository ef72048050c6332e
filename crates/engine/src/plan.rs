//! What to run: the engine's pure description of a cluster, rendered by each backend.

use std::collections::BTreeMap;

use crate::backend::ResourceKey;

/// Application cluster (runs one job) or session cluster (accepts jobs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterMode {
    /// Runs `JobPlan` on start (Flink application mode).
    Application,
    /// Starts empty; `FlinkSessionJob`s are submitted to it.
    Session,
}

/// A cluster to run, computed by the engine from the spec and the status (restore path, job id).
///
/// Backend-neutral: `config` already holds everything Flink needs from the spec (memory, slots,
/// checkpointing, restore settings, the job id); a backend only adds what is its own (ports and
/// directories for local processes; Kubernetes settings for pods).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterPlan {
    /// The resource this cluster belongs to.
    pub key: ResourceKey,
    /// `metadata.uid` of the resource, for owner references (Kubernetes); `None` locally.
    pub owner_uid: Option<String>,
    /// Flink version of the cluster.
    pub flink_version: api::FlinkVersion,
    /// Application or session cluster.
    pub mode: ClusterMode,
    /// The effective Flink configuration (flat keys), user settings plus the engine's.
    pub config: flink::config::FlinkConfig,
    /// The job of an application cluster.
    pub job: Option<JobPlan>,
    /// JobManager processes.
    pub jobmanager: ProcessPlan,
    /// TaskManager processes.
    pub taskmanager: ProcessPlan,
    /// TaskManager slots (`taskmanager.numberOfTaskSlots`).
    pub task_slots: u32,
    /// Log configuration files by name (`log4j-console.properties`, …), from the spec.
    pub log_configuration: BTreeMap<String, String>,
    /// The spec this plan was made from, for backend-specific fields (image, pod templates,
    /// service account, ingress) that the local backend ignores.
    pub spec: api::FlinkDeploymentSpec,
    /// Stable hash of everything above: equal hashes mean "the same cluster", which is how a
    /// repeated `deploy` knows there is nothing to do.
    pub plan_hash: String,
}

/// The job an application cluster runs.
#[derive(Clone, Debug, PartialEq)]
pub struct JobPlan {
    /// `jarURI` as written (`local:///…`, `file:///…`, `https://…`).
    pub jar_uri: String,
    /// Entry class; `None` to use the jar manifest's `Main-Class`.
    pub entry_class: Option<String>,
    /// Program arguments.
    pub args: Vec<String>,
    /// Default parallelism.
    pub parallelism: u32,
    /// The job id, chosen by the engine and recorded in the status before the job exists.
    pub job_id: String,
    /// State to start from; `None` for a fresh start.
    pub restore: Option<RestorePlan>,
}

/// Where a job restores its state from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestorePlan {
    /// Savepoint or retained checkpoint path.
    pub path: String,
    /// Skip state that no operator claims (`allowNonRestoredState`).
    pub allow_non_restored_state: bool,
}

/// Count and size of one kind of Flink process.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessPlan {
    /// Number of processes (pods / local processes).
    pub replicas: u32,
    /// Process memory in bytes (`resource.memory`), if set.
    pub memory_bytes: Option<u64>,
    /// CPU cores (`resource.cpu`), if set.
    pub cpu: Option<f64>,
}
