//! Status types shared by `FlinkDeployment` and `FlinkSessionJob`, with the Apache operator's
//! field names and enum spellings so dashboards and scripts written for it keep working.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Generates a `SCREAMING_SNAKE_CASE` status enum with `as_str` and `Display`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash,
            ::serde::Serialize, ::serde::Deserialize, ::schemars::JsonSchema,
        )]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire,)+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// The state of a Flink job as Flink reports it (`status.jobStatus.state`).
    FlinkJobState {
        /// Cancelled by a user or the operator.
        Canceled => "CANCELED",
        /// Being cancelled.
        Cancelling => "CANCELLING",
        /// Submitted, not yet scheduled.
        Created => "CREATED",
        /// Failed terminally.
        Failed => "FAILED",
        /// Failing; may restart.
        Failing => "FAILING",
        /// Finished (bounded job).
        Finished => "FINISHED",
        /// Being initialized by the JobManager.
        Initializing => "INITIALIZING",
        /// Being recovered after a JobManager failover.
        Reconciling => "RECONCILING",
        /// Restarting after a failure.
        Restarting => "RESTARTING",
        /// Running.
        Running => "RUNNING",
        /// Suspended (stopped with its state kept).
        Suspended => "SUSPENDED",
    }
}

impl FlinkJobState {
    /// `true` for states a job never leaves by itself (globally terminal in Flink's sense, plus
    /// `SUSPENDED`, which only the operator resumes).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Canceled | Self::Failed | Self::Finished | Self::Suspended
        )
    }
}

wire_enum! {
    /// The lifecycle of a resource as shown in `kubectl get` (`status.lifecycleState`).
    ResourceLifecycleState {
        /// Accepted, not yet deployed.
        Created => "CREATED",
        /// Deleted.
        Deleted => "DELETED",
        /// Being deleted.
        Deleting => "DELETING",
        /// Deployed, not yet stable.
        Deployed => "DEPLOYED",
        /// Failed.
        Failed => "FAILED",
        /// Rolled back to the last stable spec.
        RolledBack => "ROLLED_BACK",
        /// Rolling back to the last stable spec.
        RollingBack => "ROLLING_BACK",
        /// Deployed and stable.
        Stable => "STABLE",
        /// Suspended by the user.
        Suspended => "SUSPENDED",
        /// Being upgraded.
        Upgrading => "UPGRADING",
    }
}

wire_enum! {
    /// State of the last reconciled spec (`status.reconciliationStatus.state`).
    ReconciliationState {
        /// The spec is deployed.
        Deployed => "DEPLOYED",
        /// Rolled back to the last stable spec.
        RolledBack => "ROLLED_BACK",
        /// Rolling back to the last stable spec.
        RollingBack => "ROLLING_BACK",
        /// The spec is being deployed (the old job is being stopped or the new one started).
        Upgrading => "UPGRADING",
    }
}

wire_enum! {
    /// What triggered a savepoint or checkpoint.
    SnapshotTriggerType {
        /// A user (nonce or `FlinkStateSnapshot`).
        Manual => "MANUAL",
        /// The periodic snapshot interval.
        Periodic => "PERIODIC",
        /// Not known (e.g. an initial savepoint path).
        Unknown => "UNKNOWN",
        /// An upgrade or suspend.
        Upgrade => "UPGRADE",
    }
}

wire_enum! {
    /// Savepoint format.
    SavepointFormatType {
        /// Flink's portable format.
        Canonical => "CANONICAL",
        /// The state backend's native format.
        Native => "NATIVE",
        /// Not known.
        Unknown => "UNKNOWN",
    }
}

wire_enum! {
    /// Checkpoint type.
    CheckpointType {
        /// A full checkpoint.
        Full => "FULL",
        /// An incremental checkpoint.
        Incremental => "INCREMENTAL",
        /// Not known.
        Unknown => "UNKNOWN",
    }
}

/// The observed Flink job (`status.jobStatus`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// Name of the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Flink job id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Last observed state of the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<FlinkJobState>,
    /// Start time of the job (epoch milliseconds, as text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Last update time of the job (epoch milliseconds, as text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
    /// Deprecated: savepoint taken for the last upgrade.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_savepoint_path: Option<String>,
    /// Deprecated: pending and past savepoints. Still read and written for compatibility.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savepoint_info: Option<SavepointInfo>,
    /// Deprecated: pending and past checkpoints. Still read and written for compatibility.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_info: Option<CheckpointInfo>,
}

/// Savepoint bookkeeping (`status.jobStatus.savepointInfo`, deprecated upstream).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavepointInfo {
    /// The last completed savepoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_savepoint: Option<Savepoint>,
    /// Trigger id of the savepoint in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<String>,
    /// When the savepoint in progress was triggered (epoch milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_timestamp: Option<i64>,
    /// What triggered the savepoint in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_type: Option<SnapshotTriggerType>,
    /// Format of the savepoint in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_type: Option<SavepointFormatType>,
    /// Completed savepoints, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savepoint_history: Option<Vec<Savepoint>>,
    /// When the last periodic savepoint was triggered (epoch milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_periodic_savepoint_timestamp: Option<i64>,
}

/// A completed savepoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Savepoint {
    /// When it completed (epoch milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_stamp: Option<i64>,
    /// Where it is stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// What triggered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_type: Option<SnapshotTriggerType>,
    /// Its format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_type: Option<SavepointFormatType>,
    /// The nonce that triggered it, for manual savepoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_nonce: Option<i64>,
}

/// Checkpoint bookkeeping (`status.jobStatus.checkpointInfo`, deprecated upstream).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointInfo {
    /// The last completed manual checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_checkpoint: Option<Checkpoint>,
    /// Trigger id of the checkpoint in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<String>,
    /// When the checkpoint in progress was triggered (epoch milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_timestamp: Option<i64>,
    /// What triggered the checkpoint in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_type: Option<SnapshotTriggerType>,
    /// Type of the checkpoint in progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_type: Option<CheckpointType>,
    /// When the last periodic checkpoint was triggered (epoch milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_periodic_checkpoint_timestamp: Option<i64>,
}

/// A completed checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// When it completed (epoch milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_stamp: Option<i64>,
    /// What triggered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_type: Option<SnapshotTriggerType>,
    /// Its type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_type: Option<CheckpointType>,
    /// The nonce that triggered it, for manual checkpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_nonce: Option<i64>,
}

/// What was last reconciled (`status.reconciliationStatus`).
///
/// `lastReconciledSpec` and `lastStableSpec` are JSON strings in the Apache operator's format;
/// read and write them with [`crate::reconciled`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconciliationStatus {
    /// When the last reconciliation succeeded (epoch milliseconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciliation_timestamp: Option<i64>,
    /// The last spec acted on, as JSON (see [`crate::reconciled`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reconciled_spec: Option<String>,
    /// The last spec that became stable, as JSON; the rollback target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_stable_spec: Option<String>,
    /// State of the last reconciled spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<ReconciliationState>,
}

impl ReconciliationStatus {
    /// `true` until a spec has been deployed once.
    pub fn is_before_first_deployment(&self) -> bool {
        self.last_reconciled_spec.is_none()
    }

    /// The reconciliation state; `UPGRADING` when not set, as in the Apache operator.
    pub fn state(&self) -> ReconciliationState {
        self.state.unwrap_or(ReconciliationState::Upgrading)
    }

    /// `true` when the last reconciled spec is also the last stable one.
    pub fn is_last_reconciled_spec_stable(&self) -> bool {
        matches!((&self.last_reconciled_spec, &self.last_stable_spec), (Some(a), Some(b)) if a == b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_enums_use_screaming_snake_case_wire_spellings() {
        for s in ResourceLifecycleState::ALL {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            let back: ResourceLifecycleState = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *s);
        }
        assert_eq!(ResourceLifecycleState::RolledBack.as_str(), "ROLLED_BACK");
        assert_eq!(FlinkJobState::Canceled.as_str(), "CANCELED");
        assert_eq!(FlinkJobState::ALL.len(), 11);
    }

    #[test]
    fn apache_status_json_with_deprecated_fields_is_read() {
        let json = r#"{
            "jobName": "j", "jobId": "abc", "state": "RUNNING", "startTime": "1700000000000",
            "upgradeSavepointPath": "s3://b/sp-1",
            "savepointInfo": {"lastSavepoint": {"timeStamp": 1, "location": "s3://b/sp-1",
                "triggerType": "UPGRADE", "formatType": "CANONICAL", "triggerNonce": null},
                "savepointHistory": [], "lastPeriodicSavepointTimestamp": 0},
            "checkpointInfo": {"lastCheckpoint": null, "lastPeriodicCheckpointTimestamp": 0}
        }"#;
        let s: JobStatus = serde_json::from_str(json).unwrap();
        assert_eq!(s.state, Some(FlinkJobState::Running));
        let sp = s.savepoint_info.unwrap().last_savepoint.unwrap();
        assert_eq!(sp.location.as_deref(), Some("s3://b/sp-1"));
        assert_eq!(sp.trigger_type, Some(SnapshotTriggerType::Upgrade));
    }

    #[test]
    fn reconciliation_state_defaults_to_upgrading() {
        let r = ReconciliationStatus::default();
        assert!(r.is_before_first_deployment());
        assert_eq!(r.state(), ReconciliationState::Upgrading);
        assert!(!r.is_last_reconciled_spec_stable());
    }
}
