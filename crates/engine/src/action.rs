//! What `decide` asks `act` to do, what comes back, and the events a pass records.

use std::fmt;

use crate::plan::ClusterPlan;

/// Savepoint format, as the Apache operator's `kubernetes.operator.savepoint.format.type`.
pub use flink::SavepointFormat;

/// One step `act` carries out. At most one destructive step (see [`Action::is_destructive`]) is
/// decided per pass; the next pass observes its result.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Bring up the cluster of `plan` (idempotent: the same plan hash already running is a
    /// no-op).
    Deploy(Box<ClusterPlan>),
    /// Remove the cluster and all its processes or pods.
    DeleteCluster,
    /// Set the number of TaskManagers, and on success record `reconciled_spec` (the spec with
    /// the new replicas, as `lastReconciledSpec` JSON).
    Scale {
        /// TaskManagers wanted.
        taskmanagers: u32,
        /// The `lastReconciledSpec` to record once scaled.
        reconciled_spec: String,
    },
    /// Stop the job with a final savepoint, under a trigger id already recorded in the status.
    StopWithSavepoint(SavepointCall),
    /// Take a savepoint of the running job, under a trigger id already recorded in the status.
    TriggerSavepoint(SavepointCall),
    /// Cancel the job without a savepoint.
    CancelJob {
        /// The job.
        job_id: String,
    },
    /// The resource is being deleted and its cluster is gone: let the store drop it (remove the
    /// finalizer; locally, the file).
    FinishDeletion,
    /// Take a checkpoint of the running job, under a trigger id already recorded in the status.
    TriggerCheckpoint {
        /// The job.
        job_id: String,
        /// The trigger id, recorded in `status.jobStatus.checkpointInfo.triggerId` first.
        trigger_id: String,
    },
    /// Delete the files of a savepoint: through the JobManager's disposal API when
    /// `via_flink` (a cluster runs), else directly on storage through the backend. A path
    /// that is already gone counts as disposed.
    DisposeSnapshot {
        /// The savepoint (or checkpoint) directory.
        path: String,
        /// Dispose through the running JobManager.
        via_flink: bool,
    },
    /// Create a `FlinkStateSnapshot` (a snapshot the operator takes itself), after the status
    /// records that it is to be created. Creating one that exists already is a no-op.
    CreateSnapshotResource(Box<api::FlinkStateSnapshot>),
    /// Delete a `FlinkStateSnapshot` of this deployment (retention); its own finalizer disposes
    /// its files first when it says so.
    DeleteSnapshotResource {
        /// Its name (same namespace).
        name: String,
    },
}

/// The arguments of a savepoint or stop-with-savepoint call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavepointCall {
    /// The job.
    pub job_id: String,
    /// The trigger id, recorded in `status.jobStatus.savepointInfo.triggerId` first.
    pub trigger_id: String,
    /// Target directory; the cluster's default when `None`.
    pub target_dir: Option<String>,
    /// Savepoint format.
    pub format: SavepointFormat,
    /// Drain the pipeline before stopping (stop only).
    pub drain: bool,
}

impl Action {
    /// `true` for steps that end a running job or remove a cluster.
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            Action::DeleteCluster | Action::StopWithSavepoint(_) | Action::CancelJob { .. }
        )
    }

    /// A short name for logs and failpoints: `deploy`, `delete-cluster`, …
    pub fn name(&self) -> &'static str {
        match self {
            Action::Deploy(_) => "deploy",
            Action::DeleteCluster => "delete-cluster",
            Action::Scale { .. } => "scale",
            Action::StopWithSavepoint(_) => "stop-with-savepoint",
            Action::TriggerSavepoint(_) => "trigger-savepoint",
            Action::CancelJob { .. } => "cancel-job",
            Action::FinishDeletion => "finish-deletion",
            Action::TriggerCheckpoint { .. } => "trigger-checkpoint",
            Action::DisposeSnapshot { .. } => "dispose-snapshot",
            Action::CreateSnapshotResource(_) => "create-snapshot-resource",
            Action::DeleteSnapshotResource { .. } => "delete-snapshot-resource",
        }
    }
}

/// The result of carrying out one [`Action`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Done,
    /// Failed; `message` says what and where (no secrets).
    Failed {
        /// What went wrong.
        message: String,
        /// Whether retrying the same step may succeed.
        transient: bool,
    },
}

/// `Normal` or `Warning`, as Kubernetes events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something happened as planned.
    Normal,
    /// Something needs attention.
    Warning,
}

impl EventType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Why an event was recorded; the Apache operator's reason names where it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventReason {
    /// A cluster/job is being deployed.
    Submit,
    /// The spec changed and the change is being applied.
    SpecChanged,
    /// The job was suspended.
    Suspended,
    /// The job's state changed.
    JobStatusChanged,
    /// A savepoint completed.
    SavepointCreated,
    /// A savepoint failed.
    SavepointError,
    /// The spec or a change of it is invalid.
    ValidationError,
    /// The cluster is gone although it should run.
    Missing,
    /// TaskManagers are being scaled.
    Scaling,
    /// The resource is being cleaned up for deletion.
    Cleanup,
    /// A step cannot proceed safely (e.g. no state to restore from) and waits.
    UpgradeBlocked,
    /// A backend or REST call failed.
    Error,
    /// A snapshot was triggered (periodic, manual, or a `FlinkStateSnapshot`).
    SnapshotTriggered,
    /// A checkpoint completed.
    CheckpointCreated,
    /// A checkpoint failed.
    CheckpointError,
    /// A snapshot was abandoned: its job does not run (any more).
    SnapshotAbandoned,
    /// Disposing a snapshot's files failed.
    CleanupFailed,
    /// A lost JobManager (or TaskManagers) is being recovered.
    RecoverDeployment,
    /// A FAILED job is redeployed (`kubernetes.operator.job.restart.failed`).
    RestartFailedJob,
    /// The health check found the job unhealthy; it is restarted.
    RestartUnhealthyJob,
    /// An upgrade that did not become stable is rolled back.
    Rollback,
}

impl EventReason {
    /// The wire spelling (`SpecChanged`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::Submit => "Submit",
            EventReason::SpecChanged => "SpecChanged",
            EventReason::Suspended => "Suspended",
            EventReason::JobStatusChanged => "JobStatusChanged",
            EventReason::SavepointCreated => "SavepointCreated",
            EventReason::SavepointError => "SavepointError",
            EventReason::ValidationError => "ValidationError",
            EventReason::Missing => "Missing",
            EventReason::Scaling => "Scaling",
            EventReason::Cleanup => "Cleanup",
            EventReason::UpgradeBlocked => "UpgradeBlocked",
            EventReason::Error => "Error",
            EventReason::SnapshotTriggered => "SnapshotTriggered",
            EventReason::CheckpointCreated => "CheckpointCreated",
            EventReason::CheckpointError => "CheckpointError",
            EventReason::SnapshotAbandoned => "SnapshotAbandoned",
            EventReason::CleanupFailed => "CleanupFailed",
            EventReason::RecoverDeployment => "RecoverDeployment",
            EventReason::RestartFailedJob => "RestartFailedJob",
            EventReason::RestartUnhealthyJob => "RestartUnhealthyJob",
            EventReason::Rollback => "Rollback",
        }
    }
}

impl fmt::Display for EventReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event about one resource, for people (`kubectl describe`, `flinkpilot local describe`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Normal or Warning.
    pub type_: EventType,
    /// Why.
    pub reason: EventReason,
    /// What happened, as a sentence. Never holds a secret.
    pub message: String,
}

impl Event {
    /// A `Normal` event.
    pub fn normal(reason: EventReason, message: impl Into<String>) -> Self {
        Event {
            type_: EventType::Normal,
            reason,
            message: message.into(),
        }
    }

    /// A `Warning` event.
    pub fn warning(reason: EventReason, message: impl Into<String>) -> Self {
        Event {
            type_: EventType::Warning,
            reason,
            message: message.into(),
        }
    }
}
