//! `FlinkStateSnapshot`: one savepoint or checkpoint of a job, triggered on request or
//! recording one that already exists.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::resource::{CrdInfo, custom_resource};
use crate::status::{SavepointFormatType, wire_enum};

/// Desired state of a `FlinkStateSnapshot`. Exactly one of `savepoint` and `checkpoint` is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlinkStateSnapshotSpec {
    /// The job to snapshot. Not needed for a savepoint that already exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_reference: Option<JobReference>,
    /// Set for a savepoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savepoint: Option<SavepointSpec>,
    /// Set (to `{}`) for a checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointSpec>,
    /// Retries before the snapshot counts as failed: `-1` (default) retries forever, `0` never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
}

impl FlinkStateSnapshotSpec {
    /// Retries before giving up; `-1` (unlimited) when not set.
    pub fn backoff_limit(&self) -> i32 {
        self.backoff_limit.unwrap_or(-1)
    }

    /// `true` for a savepoint snapshot.
    pub fn is_savepoint(&self) -> bool {
        self.savepoint.is_some()
    }

    /// `true` for a checkpoint snapshot.
    pub fn is_checkpoint(&self) -> bool {
        self.checkpoint.is_some()
    }
}

/// Kind of the resource whose job is snapshotted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum JobKind {
    /// An application `FlinkDeployment`.
    FlinkDeployment,
    /// A `FlinkSessionJob`.
    FlinkSessionJob,
}

/// The resource whose job is snapshotted (`spec.jobReference`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobReference {
    /// Kind of the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<JobKind>,
    /// Name of the resource (same namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A savepoint request or record (`spec.savepoint`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavepointSpec {
    /// Where to write the savepoint (or where it is, with `alreadyExists`). Defaults to the
    /// job's configured savepoint directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Savepoint format; `CANONICAL` when not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_type: Option<SavepointFormatType>,
    /// Delete the savepoint's files when this resource is deleted; `true` when not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispose_on_delete: Option<bool>,
    /// The savepoint exists already at `path`: record it, trigger nothing; `false` when not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub already_exists: Option<bool>,
}

impl SavepointSpec {
    /// Savepoint format; `CANONICAL` when not set.
    pub fn format_type(&self) -> SavepointFormatType {
        self.format_type.unwrap_or(SavepointFormatType::Canonical)
    }

    /// Whether files are deleted with the resource; `true` when not set.
    pub fn dispose_on_delete(&self) -> bool {
        self.dispose_on_delete.unwrap_or(true)
    }

    /// Whether the savepoint already exists; `false` when not set.
    pub fn already_exists(&self) -> bool {
        self.already_exists.unwrap_or(false)
    }
}

/// A checkpoint request (`spec.checkpoint`); it has no settings of its own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckpointSpec {}

wire_enum! {
    /// Progress of a snapshot (`status.state`).
    FlinkStateSnapshotState {
        /// The job was not running; the snapshot will not be taken.
        Abandoned => "ABANDONED",
        /// Completed.
        Completed => "COMPLETED",
        /// Failed after all retries.
        Failed => "FAILED",
        /// Triggered, not complete yet.
        InProgress => "IN_PROGRESS",
        /// Waiting to be triggered.
        TriggerPending => "TRIGGER_PENDING",
    }
}

/// Observed state of a `FlinkStateSnapshot`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlinkStateSnapshotStatus {
    /// Progress of the snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<FlinkStateSnapshotState>,
    /// Flink's trigger id while in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<String>,
    /// When it was triggered (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_timestamp: Option<String>,
    /// When it completed or failed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_timestamp: Option<String>,
    /// Where the completed snapshot is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Last error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Number of failed attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<i32>,
}

custom_resource! {
    /// One savepoint or checkpoint of a job.
    FlinkStateSnapshot {
        spec: FlinkStateSnapshotSpec,
        status: FlinkStateSnapshotStatus,
        crd_name: "flinkstatesnapshots.flink.apache.org",
        info: CrdInfo {
            kind: "FlinkStateSnapshot",
            plural: "flinkstatesnapshots",
            singular: "flinkstatesnapshot",
            short_names: &["flinksnp"],
            printer_columns: &[
                ("Path", ".status.path"),
                ("Result Timestamp", ".status.resultTimestamp"),
                ("Snapshot State", ".status.state"),
            ],
            scale: None,
            description: "A savepoint or checkpoint of the job of a FlinkDeployment or \
                          FlinkSessionJob.",
        },
    }
}
