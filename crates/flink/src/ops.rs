//! Flink's asynchronous-operation protocol, once for every operation that uses it.
//!
//! A trigger (`POST`) answers `{"request-id": "<trigger id>"}` at once; the result is then
//! read from a status endpoint (`GET …/:triggerid`) that answers
//! `{"status": {"id": "IN_PROGRESS" | "COMPLETED"}, "operation": {...}}`, where a completed
//! operation carries either its result or a `failure-cause`. Savepoints, stop-with-savepoint,
//! manual checkpoints and savepoint disposal all follow it.
//!
//! The caller may choose the trigger id itself (`triggerId` in the request, Flink 1.15+).
//! Flink treats a repeated trigger with the same id as the same operation, so a controller
//! can persist the id *before* triggering and, after a crash, ask for that id's status
//! instead of taking a second savepoint.

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::client::{Call, FlinkClient};
use crate::error::{Error, FailureCause, Result, truncate};
pub use crate::ids::TriggerId;

/// Which asynchronous operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationKind {
    /// `POST /jobs/:jobid/savepoints`.
    Savepoint,
    /// `POST /jobs/:jobid/stop`.
    StopWithSavepoint,
    /// `POST /jobs/:jobid/checkpoints`.
    Checkpoint,
    /// `POST /savepoint-disposal`.
    SavepointDisposal,
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OperationKind::Savepoint => "savepoint",
            OperationKind::StopWithSavepoint => "stop-with-savepoint",
            OperationKind::Checkpoint => "checkpoint",
            OperationKind::SavepointDisposal => "savepoint disposal",
        })
    }
}

/// How long and how often to poll an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollOptions {
    /// Give up (with [`Error::OperationPending`]) after this long.
    pub timeout: Duration,
    /// Wait between two status reads.
    pub interval: Duration,
}

impl Default for PollOptions {
    /// Ten minutes (Flink's default checkpoint timeout), polled every 500 ms.
    fn default() -> Self {
        PollOptions {
            timeout: Duration::from_secs(600),
            interval: Duration::from_millis(500),
        }
    }
}

impl PollOptions {
    /// Polls every `interval` for at most `timeout`.
    pub fn new(timeout: Duration, interval: Duration) -> Self {
        PollOptions { timeout, interval }
    }
}

/// The state of an operation after one status read. A failed operation is an
/// [`Error::OperationFailed`], not a state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationStatus<T> {
    /// Flink is still working on it.
    InProgress,
    /// Done, with its result.
    Completed(T),
}

#[derive(Deserialize)]
struct TriggerResponse {
    #[serde(rename = "request-id")]
    request_id: TriggerId,
}

#[derive(Deserialize)]
struct StatusResponse {
    status: StatusId,
    #[serde(default)]
    operation: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StatusId {
    id: String,
}

#[derive(Deserialize)]
struct RawFailureCause {
    #[serde(default)]
    class: Option<String>,
    #[serde(default, rename = "stack-trace")]
    stack_trace: Option<String>,
    #[serde(default, rename = "serialized-throwable")]
    _serialized: Option<serde_json::Value>,
}

/// Longest stack trace kept in a [`FailureCause`].
const MAX_TRACE_LEN: usize = 4000;

impl FailureCause {
    /// Reads Flink's `failure-cause` object: first line, innermost `Caused by:` line, and a
    /// truncated trace.
    fn from_raw(raw: RawFailureCause) -> Self {
        let trace = raw.stack_trace.unwrap_or_default();
        let (message, root_cause) = summarize_trace(&trace);
        let mut stack_trace = trace;
        truncate(&mut stack_trace, MAX_TRACE_LEN);
        FailureCause {
            message: message.unwrap_or_else(|| {
                raw.class
                    .clone()
                    .unwrap_or_else(|| "Flink reported a failure without a cause".into())
            }),
            class: raw.class,
            root_cause,
            stack_trace,
        }
    }
}

/// First line and innermost `Caused by:` line of a Java stack trace.
pub(crate) fn summarize_trace(trace: &str) -> (Option<String>, Option<String>) {
    let first = trace
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string);
    let root = trace
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("Caused by: "))
        .map(str::to_string);
    (first, root)
}

impl FlinkClient {
    /// Sends a trigger once and returns its trigger id. Never retried: a lost answer is
    /// resolved by polling the trigger id the caller put in the body, not by a second POST.
    pub(crate) async fn trigger_operation(
        &self,
        call: Call,
        body: &impl Serialize,
    ) -> Result<TriggerId> {
        debug_assert_eq!(call.method, Method::POST);
        let response: TriggerResponse = self.send(call, Some(body)).await?;
        Ok(response.request_id)
    }

    /// Reads an operation's status once (a `GET`, so transient failures are retried).
    pub(crate) async fn operation_status<T: DeserializeOwned>(
        &self,
        kind: OperationKind,
        status_call: Call,
        trigger_id: &TriggerId,
    ) -> Result<OperationStatus<T>> {
        let at = self.call_site(&status_call);
        let response: StatusResponse = self.get(status_call).await?;
        match response.status.id.as_str() {
            "IN_PROGRESS" => Ok(OperationStatus::InProgress),
            "COMPLETED" => {
                let operation = response.operation.unwrap_or(serde_json::Value::Null);
                if let Some(cause) = operation.get("failure-cause") {
                    let raw: RawFailureCause =
                        serde_json::from_value(cause.clone()).map_err(|source| Error::Decode {
                            at: at.clone(),
                            source,
                        })?;
                    let cause = FailureCause::from_raw(raw);
                    if cause.stack_trace.contains("FlinkJobNotFoundException") {
                        return Err(Error::NotFound {
                            at,
                            message: cause.root_cause.unwrap_or(cause.message),
                        });
                    }
                    return Err(Error::OperationFailed {
                        at,
                        operation: kind,
                        trigger_id: trigger_id.clone(),
                        cause: Box::new(cause),
                    });
                }
                serde_json::from_value(operation)
                    .map(OperationStatus::Completed)
                    .map_err(|source| Error::Decode { at, source })
            }
            other => Err(Error::Decode {
                at,
                source: serde::de::Error::custom(format!(
                    "unknown operation status `{other}`, expected IN_PROGRESS or COMPLETED"
                )),
            }),
        }
    }

    /// Polls an operation until it completes, fails, or `poll.timeout` passes. `status_call`
    /// builds the status request (it is sent once per poll).
    pub(crate) async fn await_operation<T: DeserializeOwned>(
        &self,
        kind: OperationKind,
        status_call: impl Fn() -> Call,
        trigger_id: &TriggerId,
        poll: PollOptions,
    ) -> Result<T> {
        let started = Instant::now();
        loop {
            match self
                .operation_status(kind, status_call(), trigger_id)
                .await?
            {
                OperationStatus::Completed(result) => return Ok(result),
                OperationStatus::InProgress => {}
            }
            let waited = started.elapsed();
            if waited + poll.interval > poll.timeout {
                return Err(Error::OperationPending {
                    at: self.call_site(&status_call()),
                    operation: kind,
                    trigger_id: trigger_id.clone(),
                    waited,
                });
            }
            tokio::time::sleep(poll.interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_cause_names_the_innermost_cause() {
        // A real answer of Flink 2.3.0 (trace shortened) to a savepoint into an unwritable
        // directory.
        let raw: RawFailureCause = serde_json::from_str(
            r#"{"class":"java.util.concurrent.CompletionException","stack-trace":"java.util.concurrent.CompletionException: org.apache.flink.runtime.checkpoint.CheckpointException: An Exception occurred while triggering the checkpoint. IO-problem detected.\n\tat java.base/java.util.concurrent.CompletableFuture.encodeRelay(CompletableFuture.java:368)\nCaused by: org.apache.flink.runtime.checkpoint.CheckpointException: An Exception occurred while triggering the checkpoint. IO-problem detected.\n\tat org.apache.flink.runtime.checkpoint.CheckpointCoordinator.lambda$startTriggeringCheckpoint$7(CheckpointCoordinator.java:755)\nCaused by: java.io.IOException: Failed to create savepoint directory at file:/proc/nope\n\tat org.apache.flink.runtime.state.filesystem.AbstractFsCheckpointStorageAccess.initializeLocationForSavepoint(AbstractFsCheckpointStorageAccess.java:191)\n\t... 3 more\n","serialized-throwable":"rO0AB"}"#,
        )
        .unwrap();
        let cause = FailureCause::from_raw(raw);
        assert_eq!(
            cause.root_cause.as_deref(),
            Some("java.io.IOException: Failed to create savepoint directory at file:/proc/nope")
        );
        assert!(
            cause
                .message
                .starts_with("java.util.concurrent.CompletionException")
        );
        assert!(cause.to_string().contains("caused by: java.io.IOException"));
    }
}
