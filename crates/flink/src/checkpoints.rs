//! Checkpoints: statistics, the latest completed one, configuration, manual trigger.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::call::{Seg, segs};
use crate::client::{Call, FlinkClient};
use crate::error::Result;
use crate::ids::{JobId, TriggerId};
use crate::ops::{OperationKind, OperationStatus, PollOptions};

/// `GET /jobs/:jobid/checkpoints`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CheckpointStats {
    /// Counts by outcome.
    pub counts: CheckpointCounts,
    /// The latest checkpoint of each kind.
    pub latest: LatestCheckpoints,
    /// Recent checkpoints, newest first (bounded by `web.checkpoints.history`).
    #[serde(default)]
    pub history: Vec<CheckpointSummary>,
}

/// Part of [`CheckpointStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct CheckpointCounts {
    /// Restores from a checkpoint or savepoint.
    pub restored: u64,
    /// Checkpoints triggered.
    pub total: u64,
    /// Running now.
    pub in_progress: u64,
    /// Completed.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
}

/// Part of [`CheckpointStats`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LatestCheckpoints {
    /// Latest completed checkpoint.
    #[serde(default)]
    pub completed: Option<CheckpointSummary>,
    /// Latest completed savepoint.
    #[serde(default)]
    pub savepoint: Option<CheckpointSummary>,
    /// Latest failed checkpoint.
    #[serde(default)]
    pub failed: Option<CheckpointSummary>,
    /// What the job last restored from.
    #[serde(default)]
    pub restored: Option<RestoredCheckpoint>,
}

/// One checkpoint or savepoint in the statistics.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CheckpointSummary {
    /// Checkpoint id.
    pub id: u64,
    /// `COMPLETED`, `IN_PROGRESS` or `FAILED`.
    pub status: String,
    /// Whether it is a savepoint.
    #[serde(default)]
    pub is_savepoint: bool,
    /// `CANONICAL`/`NATIVE` for savepoints.
    #[serde(default, rename = "savepointFormat")]
    pub savepoint_format: Option<String>,
    /// Triggered at, epoch milliseconds.
    pub trigger_timestamp: i64,
    /// Last acknowledgement, epoch milliseconds; -1 before the first one.
    #[serde(default)]
    pub latest_ack_timestamp: i64,
    /// Size of the state, bytes.
    #[serde(default)]
    pub state_size: i64,
    /// End-to-end duration, milliseconds; -1 while the checkpoint is in progress.
    #[serde(default)]
    pub end_to_end_duration: i64,
    /// Where a completed checkpoint lives (e.g. `file:/cp/<job>/chk-11`); absent for
    /// failed and in-progress ones.
    #[serde(default)]
    pub external_path: Option<String>,
    /// Whether Flink already discarded its files (subsumed by a newer checkpoint).
    #[serde(default)]
    pub discarded: bool,
    /// Why it failed, for failed checkpoints.
    #[serde(default)]
    pub failure_message: Option<String>,
}

/// What a job restored from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RestoredCheckpoint {
    /// Checkpoint id.
    pub id: u64,
    /// Restored at, epoch milliseconds.
    pub restore_timestamp: i64,
    /// Whether it was a savepoint.
    pub is_savepoint: bool,
    /// Its path.
    #[serde(default)]
    pub external_path: Option<String>,
}

/// `GET /jobs/:jobid/checkpoints/config`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckpointConfig {
    /// `exactly_once` or `at_least_once`.
    pub mode: String,
    /// Interval in milliseconds; `i64::MAX` when periodic checkpoints are off.
    pub interval: i64,
    /// Timeout in milliseconds.
    pub timeout: i64,
    /// Minimum pause between checkpoints, milliseconds.
    pub min_pause: i64,
    /// Concurrent checkpoints allowed.
    pub max_concurrent: i64,
    /// Retention of checkpoints after the job ends.
    pub externalization: Externalization,
    /// State backend class name, e.g. `HashMapStateBackend`.
    #[serde(default)]
    pub state_backend: Option<String>,
    /// Checkpoint storage class name, e.g. `FileSystemCheckpointStorage`.
    #[serde(default)]
    pub checkpoint_storage: Option<String>,
    /// Unaligned checkpoints on.
    #[serde(default)]
    pub unaligned_checkpoints: bool,
    /// Failed checkpoints tolerated before the job fails.
    #[serde(default)]
    pub tolerable_failed_checkpoints: i64,
}

/// Part of [`CheckpointConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Externalization {
    /// Checkpoints are retained when the job is cancelled or fails.
    pub enabled: bool,
    /// They are deleted on cancellation.
    pub delete_on_cancellation: bool,
}

/// Kind of a manually triggered checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckpointType {
    /// Whatever the job is configured to take (full or incremental).
    #[default]
    Configured,
    /// A full checkpoint, cutting an incremental chain.
    Full,
    /// An incremental checkpoint; Flink 1.17 and 1.18 only.
    Incremental,
}

/// A manual checkpoint (`POST /jobs/:jobid/checkpoints`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckpointRequest {
    /// Kind of checkpoint.
    #[serde(rename = "checkpointType")]
    pub checkpoint_type: CheckpointType,
    /// A trigger id chosen by the caller; Flink picks one when `None`.
    #[serde(rename = "triggerId", skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<TriggerId>,
}

#[derive(Debug, Deserialize)]
struct CheckpointInfo {
    #[serde(rename = "checkpointId")]
    checkpoint_id: u64,
}

fn checkpoint_status_call(job: &JobId, trigger: &TriggerId) -> Call {
    Call::get(&segs!["jobs", job, "checkpoints", trigger])
}

impl FlinkClient {
    /// Checkpoint statistics of a job. Flink caches them for a few seconds
    /// (`rest.cache.checkpoint-statistics.timeout`, default `web.refresh-interval`), so
    /// right after a checkpoint or a state change they may name an older checkpoint.
    pub async fn checkpoints(&self, job: &JobId) -> Result<CheckpointStats> {
        self.get(Call::get(&segs!["jobs", job, "checkpoints"]))
            .await
    }

    /// The latest completed checkpoint (with its `external_path`), if any.
    pub async fn latest_completed_checkpoint(
        &self,
        job: &JobId,
    ) -> Result<Option<CheckpointSummary>> {
        Ok(self.checkpoints(job).await?.latest.completed)
    }

    /// One checkpoint's statistics (`GET /jobs/:jobid/checkpoints/details/:checkpointid`),
    /// with its `external_path` once complete. [`crate::Error::NotFound`] while the (cached)
    /// statistics do not list it yet.
    pub async fn checkpoint_details(
        &self,
        job: &JobId,
        checkpoint: u64,
    ) -> Result<CheckpointSummary> {
        let id = checkpoint.to_string();
        self.get(Call::get(&segs![
            "jobs",
            job,
            "checkpoints",
            "details",
            Seg::id(":checkpointid", &id),
        ]))
        .await
    }

    /// A job's checkpoint configuration.
    pub async fn checkpoint_config(&self, job: &JobId) -> Result<CheckpointConfig> {
        self.get(Call::get(&segs!["jobs", job, "checkpoints", "config"]))
            .await
    }

    /// Triggers a checkpoint and returns its trigger id at once; sent exactly once.
    /// [`crate::Error::Unsupported`] before Flink 1.17 (no such endpoint), and for
    /// [`CheckpointType::Incremental`] from Flink 1.19 on.
    pub async fn trigger_checkpoint(
        &self,
        job: &JobId,
        request: &CheckpointRequest,
    ) -> Result<TriggerId> {
        let call = Call::new(Method::POST, &segs!["jobs", job, "checkpoints"]);
        let version = self.flink_version().await?;
        if !version.supports_checkpoint_trigger() {
            return Err(self.unsupported(
                &call,
                "manual checkpoints need Flink 1.17 or later; take a savepoint instead",
            ));
        }
        if request.checkpoint_type == CheckpointType::Incremental
            && !version.supports_incremental_checkpoint_trigger()
        {
            return Err(self.unsupported(
                &call,
                "Flink 1.19 and later refuse manual incremental checkpoints; use CONFIGURED",
            ));
        }
        self.trigger_operation(call, request).await
    }

    /// Reads a manual checkpoint's status once: its checkpoint id when complete.
    pub async fn checkpoint_status(
        &self,
        job: &JobId,
        trigger: &TriggerId,
    ) -> Result<OperationStatus<u64>> {
        let status = self
            .operation_status::<CheckpointInfo>(
                OperationKind::Checkpoint,
                checkpoint_status_call(job, trigger),
                trigger,
            )
            .await?;
        Ok(match status {
            OperationStatus::InProgress => OperationStatus::InProgress,
            OperationStatus::Completed(info) => OperationStatus::Completed(info.checkpoint_id),
        })
    }

    /// Takes a checkpoint and waits for it: returns its checkpoint id. Its path is in
    /// [`Self::checkpoints`] (`history`/`latest.completed`).
    pub async fn checkpoint(
        &self,
        job: &JobId,
        request: &CheckpointRequest,
        poll: PollOptions,
    ) -> Result<u64> {
        let trigger = self.trigger_checkpoint(job, request).await?;
        let info: CheckpointInfo = self
            .await_operation(
                OperationKind::Checkpoint,
                || checkpoint_status_call(job, &trigger),
                &trigger,
                poll,
            )
            .await?;
        Ok(info.checkpoint_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_stats_decode_with_external_path() {
        // Trimmed real answer of Flink 2.3.0 (1.20.5 sends the same shape).
        let raw = r#"{"counts":{"restored":0,"total":11,"in_progress":0,"completed":11,"failed":0},"summary":{},"latest":{"completed":{"className":"completed","id":11,"status":"COMPLETED","is_savepoint":false,"savepointFormat":null,"trigger_timestamp":1795314167383,"latest_ack_timestamp":1795314167436,"checkpointed_size":5494,"state_size":5494,"end_to_end_duration":53,"alignment_buffered":0,"processed_data":21,"persisted_data":0,"num_subtasks":4,"num_acknowledged_subtasks":4,"checkpoint_type":"CHECKPOINT","tasks":{},"external_path":"file:/tmp/fc/c-2.3.0/cp/17b8fa574977b617f4ff1e36adc23f40/chk-11","discarded":false},"savepoint":null,"failed":null,"restored":null},"history":[]}"#;
        let stats: CheckpointStats = serde_json::from_str(raw).unwrap();
        let latest = stats.latest.completed.unwrap();
        assert_eq!(latest.id, 11);
        assert_eq!(
            latest.external_path.as_deref(),
            Some("file:/tmp/fc/c-2.3.0/cp/17b8fa574977b617f4ff1e36adc23f40/chk-11")
        );
        assert_eq!(stats.counts.completed, 11);
    }

    #[test]
    fn in_progress_checkpoint_with_unknown_sizes_decodes() {
        // A real history entry of Flink 1.20.5: -1 for what is not known yet.
        let raw = r#"{"className":"in_progress","id":20,"status":"IN_PROGRESS","is_savepoint":false,"savepointFormat":null,"trigger_timestamp":1795316309705,"latest_ack_timestamp":-1,"checkpointed_size":0,"state_size":0,"end_to_end_duration":-1,"alignment_buffered":0,"processed_data":0,"persisted_data":0,"num_subtasks":4,"num_acknowledged_subtasks":0,"checkpoint_type":"CHECKPOINT","tasks":{}}"#;
        let c: CheckpointSummary = serde_json::from_str(raw).unwrap();
        assert_eq!((c.latest_ack_timestamp, c.end_to_end_duration), (-1, -1));
        assert_eq!(c.external_path, None);
    }

    #[test]
    fn checkpoint_request_spells_the_type_like_flink() {
        let body = serde_json::to_value(CheckpointRequest {
            checkpoint_type: CheckpointType::Full,
            trigger_id: None,
        })
        .unwrap();
        assert_eq!(body, serde_json::json!({"checkpointType": "FULL"}));
    }
}
