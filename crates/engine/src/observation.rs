//! What is: the plain values `observe` produces and `decide` reads.
//!
//! A piece that could not be observed this pass is `None`/`Unknown` with the reason; it is never
//! guessed.

/// Everything observed about one resource in one pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The cluster's processes or pods.
    pub cluster: ClusterObservation,
    /// The job, as the JobManager's REST API reports it.
    pub job: JobObservation,
    /// The savepoint or checkpoint trigger recorded in the status, if one is pending.
    pub trigger: Option<TriggerObservation>,
    /// The newest completed checkpoint of the job, when it was asked for.
    pub latest_checkpoint: Option<CheckpointRef>,
    /// Root cause of a FAILED job (from Flink's exception history).
    pub failure_cause: Option<String>,
    /// Snapshot bookkeeping: the legacy checkpoint trigger, the `FlinkStateSnapshot`s of this
    /// deployment.
    pub snapshots: SnapshotObservation,
    /// What recovery and the cluster health check read (see [`Progress`]).
    pub progress: Progress,
}

/// What periodic, manual and upgrade snapshots and their retention need to know.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotObservation {
    /// The checkpoint trigger recorded in `checkpointInfo.triggerId`, if one is pending.
    pub checkpoint_trigger: Option<TriggerObservation>,
    /// `FlinkStateSnapshot` resources whose `jobReference` names this deployment (read from
    /// the store, not from the backend).
    pub resources: Vec<api::FlinkStateSnapshot>,
}

/// Restart and checkpoint counters of the job, and how complete the latest-checkpoint lookup
/// was. Each part is `None`/`false` when it was not asked for or could not be read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Restarts of the job since it was submitted (Flink's `numRestarts` metric).
    pub restarts: Option<u64>,
    /// Checkpoints completed since the job was submitted.
    pub completed_checkpoints: Option<u64>,
    /// Trigger time of the newest checkpoint still in progress, epoch milliseconds.
    pub pending_checkpoint_ms: Option<i64>,
    /// Whether `latest_checkpoint` is the whole truth: the JobManager answered, or the backend
    /// could list the checkpoint storage. `false` means a newer checkpoint may exist unseen.
    pub checkpoint_lookup_complete: bool,
}

/// The cluster as its backend sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterObservation {
    /// Nothing runs for this resource.
    Absent,
    /// Created, JobManager not running yet (process starting, pod pending).
    Starting {
        /// Plan hash the cluster was deployed with.
        plan_hash: Option<String>,
    },
    /// The JobManager runs. Whether its REST API answers is the engine's to find out.
    Running {
        /// Plan hash the cluster was deployed with.
        plan_hash: Option<String>,
        /// TaskManager processes or pods running.
        taskmanagers: u32,
    },
    /// The JobManager exited or cannot start (crash loop, image pull error).
    Failed {
        /// Plan hash the cluster was deployed with.
        plan_hash: Option<String>,
        /// What the backend knows: exit code, pod reason.
        reason: String,
        /// The last lines of the JobManager's log, secrets removed.
        log_tail: Option<String>,
    },
}

/// The job as the JobManager reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum JobObservation {
    /// The REST API was not asked or did not answer.
    Unknown {
        /// Why (e.g. "JobManager not running", the client error).
        reason: String,
    },
    /// The JobManager answers but has no such job (yet). For a session cluster, which has no
    /// job of its own: the JobManager answers.
    NotFound,
    /// The job.
    Found(JobInfo),
}

/// One Flink job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobInfo {
    /// Job id.
    pub id: String,
    /// Job name.
    pub name: String,
    /// State as Flink reports it.
    pub state: api::FlinkJobState,
    /// Start time, epoch milliseconds.
    pub start_time_ms: i64,
    /// Last state change, epoch milliseconds.
    pub update_time_ms: i64,
    /// Whether every task of the job runs (or has finished), from the job's details; `None`
    /// when they could not be read. Flink reports a job `RUNNING` while its tasks are still
    /// being deployed, or fail while they start.
    pub all_tasks_running: Option<bool>,
}

/// The state of a savepoint or checkpoint trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerObservation {
    /// Trigger id as recorded in the status.
    pub trigger_id: String,
    /// Where it stands.
    pub state: TriggerState,
}

/// Where a trigger stands.
#[derive(Clone, Debug, PartialEq)]
pub enum TriggerState {
    /// Still running.
    InProgress,
    /// Done; savepoints have a location.
    Completed {
        /// The snapshot path.
        location: Option<String>,
    },
    /// Flink reported a failure.
    Failed {
        /// Flink's root cause.
        cause: String,
    },
    /// The JobManager no longer knows the trigger (it restarted, or the result expired).
    Unknown,
}

/// A completed checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointRef {
    /// Checkpoint id.
    pub id: u64,
    /// External path (`file:///…/chk-N`).
    pub path: String,
    /// Completion time, epoch milliseconds.
    pub timestamp_ms: i64,
    /// Whether its `_metadata` was seen on storage; `None` when the backend cannot look.
    pub on_storage: Option<bool>,
}
