//! Savepoints: trigger, stop-with-savepoint, status, disposal.
//!
//! Each comes in two forms: `trigger_*`/`*_status` for a controller that records the
//! trigger id and polls across reconciles, and a convenience form that triggers and waits
//! (through [`crate::ops`]).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::call::segs;
use crate::client::{Call, FlinkClient};
use crate::error::Result;
use crate::ids::{JobId, TriggerId};
use crate::ops::{OperationKind, OperationStatus, PollOptions};

/// On-disk format of a savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SavepointFormat {
    /// Portable across state backends; Flink's default.
    Canonical,
    /// The state backend's own format: faster to take and restore, tied to the backend.
    Native,
}

/// A savepoint to take (`POST /jobs/:jobid/savepoints`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SavepointRequest {
    /// Where to write it; the cluster's default savepoint directory when `None`.
    #[serde(rename = "target-directory", skip_serializing_if = "Option::is_none")]
    pub target_directory: Option<String>,
    /// Cancel the job once the savepoint is complete.
    #[serde(rename = "cancel-job")]
    pub cancel_job: bool,
    /// Format; Flink's default (canonical) when `None`.
    #[serde(rename = "formatType", skip_serializing_if = "Option::is_none")]
    pub format_type: Option<SavepointFormat>,
    /// A trigger id chosen by the caller (see [`crate::ops`]); Flink picks one when `None`.
    #[serde(rename = "triggerId", skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<TriggerId>,
}

/// Stop the job with a final savepoint (`POST /jobs/:jobid/stop`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StopRequest {
    /// Where to write the savepoint; the cluster's default when `None`.
    #[serde(rename = "targetDirectory", skip_serializing_if = "Option::is_none")]
    pub target_directory: Option<String>,
    /// Emit `MAX_WATERMARK` and flush all event-time timers before stopping: for a final
    /// stop, not for an upgrade (the new job would see timers already fired).
    pub drain: bool,
    /// Format; Flink's default (canonical) when `None`.
    #[serde(rename = "formatType", skip_serializing_if = "Option::is_none")]
    pub format_type: Option<SavepointFormat>,
    /// A trigger id chosen by the caller; Flink picks one when `None`.
    #[serde(rename = "triggerId", skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<TriggerId>,
}

#[derive(Debug, Deserialize)]
struct SavepointInfo {
    location: String,
}

#[derive(Serialize)]
struct DisposalRequest<'a> {
    #[serde(rename = "savepoint-path")]
    savepoint_path: &'a str,
    #[serde(rename = "triggerId", skip_serializing_if = "Option::is_none")]
    trigger_id: Option<&'a TriggerId>,
}

#[derive(Debug, Deserialize)]
struct Empty {}

fn savepoint_status_call(job: &JobId, trigger: &TriggerId) -> Call {
    Call::get(&segs!["jobs", job, "savepoints", trigger])
}

fn disposal_status_call(trigger: &TriggerId) -> Call {
    Call::get(&segs!["savepoint-disposal", trigger])
}

impl FlinkClient {
    /// Triggers a savepoint and returns its trigger id at once. Sent exactly once.
    pub async fn trigger_savepoint(
        &self,
        job: &JobId,
        request: &SavepointRequest,
    ) -> Result<TriggerId> {
        let call = Call::new(Method::POST, &segs!["jobs", job, "savepoints"]);
        self.trigger_operation(call, request).await
    }

    /// Triggers stop-with-savepoint and returns its trigger id at once. Sent exactly once.
    /// Its progress is read with [`Self::savepoint_status`].
    pub async fn trigger_stop(&self, job: &JobId, request: &StopRequest) -> Result<TriggerId> {
        let call = Call::new(Method::POST, &segs!["jobs", job, "stop"]);
        self.trigger_operation(call, request).await
    }

    /// Reads a savepoint's (or stop-with-savepoint's) status once: the final path when
    /// complete, [`crate::Error::OperationFailed`] with Flink's cause when it failed,
    /// [`crate::Error::NotFound`] for a trigger id Flink does not know (never triggered, or
    /// forgotten after a JobManager restart).
    pub async fn savepoint_status(
        &self,
        job: &JobId,
        trigger: &TriggerId,
    ) -> Result<OperationStatus<String>> {
        let status = self
            .operation_status::<SavepointInfo>(
                OperationKind::Savepoint,
                savepoint_status_call(job, trigger),
                trigger,
            )
            .await?;
        Ok(match status {
            OperationStatus::InProgress => OperationStatus::InProgress,
            OperationStatus::Completed(info) => OperationStatus::Completed(info.location),
        })
    }

    /// Waits for a triggered savepoint or stop-with-savepoint and returns its path.
    pub async fn await_savepoint(
        &self,
        job: &JobId,
        kind: OperationKind,
        trigger: &TriggerId,
        poll: PollOptions,
    ) -> Result<String> {
        let info: SavepointInfo = self
            .await_operation(kind, || savepoint_status_call(job, trigger), trigger, poll)
            .await?;
        Ok(info.location)
    }

    /// Takes a savepoint and waits for it: returns its path (e.g.
    /// `file:/savepoints/savepoint-0123ab-0a1b2c3d4e5f`).
    pub async fn savepoint(
        &self,
        job: &JobId,
        request: &SavepointRequest,
        poll: PollOptions,
    ) -> Result<String> {
        let trigger = self.trigger_savepoint(job, request).await?;
        self.await_savepoint(job, OperationKind::Savepoint, &trigger, poll)
            .await
    }

    /// Stops the job with a savepoint and waits for it: returns the savepoint's path. The
    /// job ends `FINISHED`.
    pub async fn stop_with_savepoint(
        &self,
        job: &JobId,
        request: &StopRequest,
        poll: PollOptions,
    ) -> Result<String> {
        let trigger = self.trigger_stop(job, request).await?;
        self.await_savepoint(job, OperationKind::StopWithSavepoint, &trigger, poll)
            .await
    }

    /// Starts disposing a savepoint (`POST /savepoint-disposal`): Flink deletes its files
    /// and metadata. Sent exactly once.
    pub async fn trigger_savepoint_disposal(
        &self,
        savepoint_path: &str,
        trigger_id: Option<&TriggerId>,
    ) -> Result<TriggerId> {
        let call = Call::new(Method::POST, &segs!["savepoint-disposal"]);
        let body = DisposalRequest {
            savepoint_path,
            trigger_id,
        };
        self.trigger_operation(call, &body).await
    }

    /// Reads a disposal's status once.
    pub async fn savepoint_disposal_status(
        &self,
        trigger: &TriggerId,
    ) -> Result<OperationStatus<()>> {
        let status = self
            .operation_status::<Empty>(
                OperationKind::SavepointDisposal,
                disposal_status_call(trigger),
                trigger,
            )
            .await?;
        Ok(match status {
            OperationStatus::InProgress => OperationStatus::InProgress,
            OperationStatus::Completed(Empty {}) => OperationStatus::Completed(()),
        })
    }

    /// Disposes a savepoint and waits until its files are gone. A path that does not
    /// exist is an [`crate::Error::OperationFailed`] (Flink cannot find it).
    pub async fn dispose_savepoint(&self, savepoint_path: &str, poll: PollOptions) -> Result<()> {
        let trigger = self
            .trigger_savepoint_disposal(savepoint_path, None)
            .await?;
        let Empty {} = self
            .await_operation(
                OperationKind::SavepointDisposal,
                || disposal_status_call(&trigger),
                &trigger,
                poll,
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn savepoint_request_uses_flinks_field_names() {
        let request = SavepointRequest {
            target_directory: Some("file:///sp".into()),
            cancel_job: false,
            format_type: Some(SavepointFormat::Native),
            trigger_id: Some("0123456789abcdef0123456789abcdef".parse().unwrap()),
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({
                "target-directory": "file:///sp",
                "cancel-job": false,
                "formatType": "NATIVE",
                "triggerId": "0123456789abcdef0123456789abcdef"
            })
        );
    }

    #[test]
    fn stop_request_uses_camel_case_unlike_savepoint_trigger() {
        let request = StopRequest {
            target_directory: Some("file:///sp".into()),
            drain: true,
            format_type: Some(SavepointFormat::Canonical),
            trigger_id: None,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"targetDirectory": "file:///sp", "drain": true, "formatType": "CANONICAL"})
        );
    }
}
