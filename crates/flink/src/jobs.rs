//! Jobs: list, details, exceptions, configuration, cancel.

use std::collections::BTreeMap;
use std::fmt;

use reqwest::Method;
use serde::Deserialize;

use crate::call::segs;
use crate::client::{Call, FlinkClient};
use crate::compat;
use crate::error::{MAX_TRACE_LEN, Result, truncate};
use crate::ids::{JobId, VertexId};
use crate::ops::summarize_trace;

/// A job's state, with Flink's spelling on the wire (`RUNNING`, `FAILED`, …). A state this
/// crate does not know yet is kept verbatim in [`JobState::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "String")]
pub enum JobState {
    /// `INITIALIZING`
    Initializing,
    /// `CREATED`
    Created,
    /// `RUNNING`
    Running,
    /// `FAILING`
    Failing,
    /// `FAILED`
    Failed,
    /// `CANCELLING`
    Cancelling,
    /// `CANCELED`
    Canceled,
    /// `FINISHED`
    Finished,
    /// `RESTARTING`
    Restarting,
    /// `SUSPENDED`
    Suspended,
    /// `RECONCILING`
    Reconciling,
    /// A state introduced by a newer Flink.
    Other(String),
}

impl JobState {
    /// Flink's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            JobState::Initializing => "INITIALIZING",
            JobState::Created => "CREATED",
            JobState::Running => "RUNNING",
            JobState::Failing => "FAILING",
            JobState::Failed => "FAILED",
            JobState::Cancelling => "CANCELLING",
            JobState::Canceled => "CANCELED",
            JobState::Finished => "FINISHED",
            JobState::Restarting => "RESTARTING",
            JobState::Suspended => "SUSPENDED",
            JobState::Reconciling => "RECONCILING",
            JobState::Other(s) => s,
        }
    }

    /// Globally terminal: the job will not run again in this cluster (`FAILED`,
    /// `CANCELED`, `FINISHED`). `SUSPENDED` is only locally terminal.
    pub fn is_globally_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Failed | JobState::Canceled | JobState::Finished
        )
    }
}

impl From<String> for JobState {
    fn from(s: String) -> Self {
        match s.as_str() {
            "INITIALIZING" => JobState::Initializing,
            "CREATED" => JobState::Created,
            "RUNNING" => JobState::Running,
            "FAILING" => JobState::Failing,
            "FAILED" => JobState::Failed,
            "CANCELLING" => JobState::Cancelling,
            "CANCELED" => JobState::Canceled,
            "FINISHED" => JobState::Finished,
            "RESTARTING" => JobState::Restarting,
            "SUSPENDED" => JobState::Suspended,
            "RECONCILING" => JobState::Reconciling,
            _ => JobState::Other(s),
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `GET /jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JobIdWithState {
    /// Job id.
    pub id: JobId,
    /// Its state.
    pub status: JobState,
}

/// One entry of `GET /jobs/overview`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobOverview {
    /// Job id.
    pub jid: JobId,
    /// Job name.
    pub name: String,
    /// Job state.
    pub state: JobState,
    /// Start, epoch milliseconds.
    #[serde(rename = "start-time")]
    pub start_time: i64,
    /// End, epoch milliseconds, or -1 while running.
    #[serde(rename = "end-time")]
    pub end_time: i64,
    /// Duration in milliseconds.
    pub duration: i64,
    /// Last state change, epoch milliseconds.
    #[serde(rename = "last-modification")]
    pub last_modification: i64,
    /// Task counts by state (lowercase keys, plus `total`).
    #[serde(default)]
    pub tasks: BTreeMap<String, u32>,
    /// `STREAMING` or `BATCH`; Flink 2.x only.
    #[serde(default, rename = "jobType")]
    pub job_type: Option<String>,
    /// `Default`, `Adaptive`, …; Flink 2.x only.
    #[serde(default, rename = "schedulerType")]
    pub scheduler_type: Option<String>,
}

#[derive(Deserialize)]
struct JobList {
    jobs: Vec<JobIdWithState>,
}

#[derive(Deserialize)]
struct JobOverviewList {
    jobs: Vec<JobOverview>,
}

/// `GET /jobs/:jobid`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JobDetails {
    /// Job id.
    pub jid: JobId,
    /// Job name.
    pub name: String,
    /// Job state.
    pub state: JobState,
    /// Start, epoch milliseconds.
    #[serde(rename = "start-time")]
    pub start_time: i64,
    /// End, epoch milliseconds, or -1 while running.
    #[serde(rename = "end-time")]
    pub end_time: i64,
    /// Duration in milliseconds.
    pub duration: i64,
    /// The JobManager's clock when it answered, epoch milliseconds.
    #[serde(default)]
    pub now: i64,
    /// When the job entered each state, epoch milliseconds (0 = never).
    #[serde(default)]
    pub timestamps: BTreeMap<String, i64>,
    /// The job's vertices (operator chains).
    #[serde(default)]
    pub vertices: Vec<Vertex>,
    /// Job-wide max parallelism, or -1 when not set.
    #[serde(default, rename = "maxParallelism")]
    pub max_parallelism: i64,
    /// `STREAMING` or `BATCH`.
    #[serde(default, rename = "job-type")]
    pub job_type: Option<String>,
    /// Id of the application the job belongs to; Flink 2.x only.
    #[serde(default, rename = "application-id")]
    pub application_id: Option<String>,
}

impl JobDetails {
    /// The highest vertex parallelism: the job's parallelism as a person means it.
    pub fn parallelism(&self) -> u32 {
        self.vertices
            .iter()
            .map(|v| v.parallelism)
            .max()
            .unwrap_or(0)
    }
}

/// One vertex in [`JobDetails`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Vertex {
    /// Vertex id.
    pub id: VertexId,
    /// Vertex name (operator chain description).
    pub name: String,
    /// Current parallelism.
    pub parallelism: u32,
    /// Max parallelism.
    #[serde(default, rename = "maxParallelism")]
    pub max_parallelism: i64,
    /// Vertex state.
    pub status: String,
    /// Start, epoch milliseconds.
    #[serde(default, rename = "start-time")]
    pub start_time: i64,
    /// Subtask counts by state.
    #[serde(default)]
    pub tasks: BTreeMap<String, u32>,
    /// Record and byte counters.
    #[serde(default)]
    pub metrics: Option<VertexIoMetrics>,
}

/// I/O counters of a vertex as shown in job details.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VertexIoMetrics {
    /// Records read.
    #[serde(default, rename = "read-records")]
    pub read_records: u64,
    /// Records written.
    #[serde(default, rename = "write-records")]
    pub write_records: u64,
    /// Bytes read.
    #[serde(default, rename = "read-bytes")]
    pub read_bytes: u64,
    /// Bytes written.
    #[serde(default, rename = "write-bytes")]
    pub write_bytes: u64,
}

/// A job's failures: the root cause of the latest one and the history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobExceptions {
    /// The latest failure, if the job failed at all.
    pub root_cause: Option<ExceptionEntry>,
    /// Failure history, newest first (bounded by Flink's `web.exception-history-size` and
    /// the `max_exceptions` asked for).
    pub history: Vec<ExceptionEntry>,
    /// Flink left out older entries.
    pub truncated: bool,
}

/// One failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionEntry {
    /// Java class of the exception, when known.
    pub class: Option<String>,
    /// First line of the exception, e.g. `java.lang.IllegalStateException: boom`.
    pub message: String,
    /// First line of the innermost `Caused by:`, when there is one.
    pub root_cause: Option<String>,
    /// When it happened, epoch milliseconds.
    pub timestamp: Option<i64>,
    /// The failing task, when Flink names it.
    pub task_name: Option<String>,
    /// The stack trace, truncated to a few thousand characters.
    pub stack_trace: String,
}

impl ExceptionEntry {
    pub(crate) fn from_raw(raw: &RawHistoryEntry) -> Self {
        let mut entry = ExceptionEntry::from_trace(&raw.stacktrace, raw.timestamp);
        entry.class = raw.exception_name.clone().or(entry.class);
        entry.task_name = raw.task_name.clone();
        entry
    }

    pub(crate) fn from_trace(trace: &str, timestamp: Option<i64>) -> Self {
        let (first, root) = summarize_trace(trace);
        let message = first.unwrap_or_default();
        let class = message
            .split(':')
            .next()
            .filter(|c| !c.contains(' ') && !c.is_empty())
            .map(str::to_string);
        ExceptionEntry {
            class,
            message,
            root_cause: root,
            timestamp,
            task_name: None,
            stack_trace: {
                let mut t = trace.to_string();
                truncate(&mut t, MAX_TRACE_LEN);
                t
            },
        }
    }
}

/// `GET /jobs/:jobid/exceptions` as sent by 1.x and 2.x (see [`compat`]).
#[derive(Debug, Deserialize)]
pub(crate) struct RawExceptions {
    /// 1.x only.
    #[serde(default, rename = "root-exception")]
    pub(crate) root_exception: Option<String>,
    /// 1.x only.
    #[serde(default)]
    pub(crate) timestamp: Option<i64>,
    #[serde(default, rename = "exceptionHistory")]
    pub(crate) exception_history: Option<RawHistory>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawHistory {
    #[serde(default)]
    pub(crate) entries: Vec<RawHistoryEntry>,
    #[serde(default)]
    pub(crate) truncated: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawHistoryEntry {
    #[serde(default, rename = "exceptionName")]
    exception_name: Option<String>,
    #[serde(default)]
    stacktrace: String,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default, rename = "taskName")]
    task_name: Option<String>,
}

/// `GET /jobs/:jobid/config`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JobConfig {
    /// Job id.
    pub jid: JobId,
    /// Job name.
    pub name: String,
    /// The job's execution configuration.
    #[serde(rename = "execution-config")]
    pub execution_config: ExecutionConfig,
}

/// Part of [`JobConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExecutionConfig {
    /// Default parallelism of the job.
    #[serde(rename = "job-parallelism")]
    pub job_parallelism: i64,
    /// Human-readable restart strategy.
    #[serde(default, rename = "restart-strategy")]
    pub restart_strategy: String,
    /// Global job parameters.
    #[serde(default, rename = "user-config")]
    pub user_config: BTreeMap<String, String>,
    /// `PIPELINED`, `BATCH`, …; Flink 1.x only.
    #[serde(default, rename = "execution-mode")]
    pub execution_mode: Option<String>,
}

impl FlinkClient {
    /// All jobs the JobManager knows, with their states (`GET /jobs`).
    pub async fn jobs(&self) -> Result<Vec<JobIdWithState>> {
        let list: JobList = self.get(Call::get(&segs!["jobs"])).await?;
        Ok(list.jobs)
    }

    /// All jobs with names, times and task counts (`GET /jobs/overview`).
    pub async fn jobs_overview(&self) -> Result<Vec<JobOverview>> {
        let list: JobOverviewList = self.get(Call::get(&segs!["jobs", "overview"])).await?;
        Ok(list.jobs)
    }

    /// Details of one job (`GET /jobs/:jobid`). Flink serves them from a cache refreshed
    /// every few seconds (`web.refresh-interval`), so they may lag [`Self::job_state`].
    pub async fn job(&self, job: &JobId) -> Result<JobDetails> {
        self.get(Call::get(&segs!["jobs", job])).await
    }

    /// Only the state of one job (`GET /jobs/:jobid/status`); cheaper than [`Self::job`].
    pub async fn job_state(&self, job: &JobId) -> Result<JobState> {
        #[derive(Deserialize)]
        struct Status {
            status: JobState,
        }
        let status: Status = self.get(Call::get(&segs!["jobs", job, "status"])).await?;
        Ok(status.status)
    }

    /// The job's failures (`GET /jobs/:jobid/exceptions`), at most `max_exceptions` history
    /// entries when given. The root cause is taken from the same place on every version.
    pub async fn job_exceptions(
        &self,
        job: &JobId,
        max_exceptions: Option<u32>,
    ) -> Result<JobExceptions> {
        let mut call = Call::get(&segs!["jobs", job, "exceptions"]);
        if let Some(max) = max_exceptions {
            call = call.query("maxExceptions", max.to_string());
        }
        let raw: RawExceptions = self.get(call).await?;
        Ok(compat::job_exceptions(raw))
    }

    /// The job's execution configuration (`GET /jobs/:jobid/config`).
    pub async fn job_config(&self, job: &JobId) -> Result<JobConfig> {
        self.get(Call::get(&segs!["jobs", job, "config"])).await
    }

    /// Cancels the job without a savepoint (`PATCH /jobs/:jobid?mode=cancel`). Returns once
    /// Flink accepted the request; the job passes through `CANCELLING` to `CANCELED`.
    /// Cancelling a job that already ended is accepted too.
    pub async fn cancel_job(&self, job: &JobId) -> Result<()> {
        let call = Call::new(Method::PATCH, &segs!["jobs", job]).query("mode", "cancel");
        self.send_ignore(call, None::<&()>).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_job_states_are_kept_verbatim() {
        let s: JobState = serde_json::from_str("\"RUNNING\"").unwrap();
        assert_eq!(s, JobState::Running);
        let s: JobState = serde_json::from_str("\"HIBERNATING\"").unwrap();
        assert_eq!(s.as_str(), "HIBERNATING");
        assert!(JobState::Finished.is_globally_terminal());
        assert!(!JobState::Suspended.is_globally_terminal());
    }

    #[test]
    fn job_overview_of_both_versions_decodes() {
        // Real answers of Flink 1.20.5 and 2.3.0 (the latter adds jobType/schedulerType).
        let v1_20 = r#"{"jobs":[{"jid":"80fc24cdd6664dec438dd061e8a74129","name":"counter","start-time":1795314156931,"end-time":-1,"duration":8595,"state":"RUNNING","last-modification":1795314158491,"tasks":{"running":4,"canceling":0,"canceled":0,"total":4,"created":0,"scheduled":0,"deploying":0,"reconciling":0,"finished":0,"initializing":0,"failed":0}}]}"#;
        let v2_3 = r#"{"jobs":[{"jid":"17b8fa574977b617f4ff1e36adc23f40","name":"counter","jobType":"STREAMING","schedulerType":"Adaptive","start-time":1795314155852,"end-time":-1,"duration":9613,"state":"RUNNING","last-modification":1795314157365,"tasks":{"running":4,"canceling":0,"canceled":0,"total":4,"created":0,"scheduled":0,"deploying":0,"reconciling":0,"finished":0,"initializing":0,"failed":0},"pending-operators":0}]}"#;
        let a: JobOverviewList = serde_json::from_str(v1_20).unwrap();
        let b: JobOverviewList = serde_json::from_str(v2_3).unwrap();
        assert_eq!(a.jobs[0].state, JobState::Running);
        assert_eq!(a.jobs[0].scheduler_type, None);
        assert_eq!(b.jobs[0].scheduler_type.as_deref(), Some("Adaptive"));
        assert_eq!(b.jobs[0].tasks["total"], 4);
    }
}
